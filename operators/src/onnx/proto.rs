//! Just enough of protobuf's wire format to edit an ONNX file.
//!
//! A message is its fields in the order they came, each kept as it was, so
//! what frameflow does not touch is written back byte for byte. Parsing
//! copies nothing: a message borrows from the bytes it was read from (a
//! model's weights are most of a model file, and it is read whole). Nothing
//! here knows ONNX's schema; [`super::graph`] does.

use std::borrow::Cow;

/// One field's value, by wire type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A string, a nested message, or a packed repeated field.
    Bytes(Cow<'a, [u8]>),
    Fixed32(u32),
}

/// A decoded message: (field number, value) pairs in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Message<'a> {
    pub(crate) fields: Vec<(u32, Value<'a>)>,
}

impl<'a> Message<'a> {
    pub(crate) fn parse(mut bytes: &'a [u8]) -> Result<Message<'a>, String> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = u32::try_from(key >> 3).map_err(|_| format!("field number {} out of range", key >> 3))?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut bytes)?),
                1 => Value::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().map_err(|_| "short field")?)),
                2 => {
                    let len = usize::try_from(varint(&mut bytes)?).map_err(|_| "field too long")?;
                    Value::Bytes(Cow::Borrowed(take(&mut bytes, len)?))
                }
                5 => Value::Fixed32(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().map_err(|_| "short field")?)),
                other => return Err(format!("wire type {other} (field {number}) is not protobuf 3")),
            };
            fields.push((number, value));
        }
        Ok(Message { fields })
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Appends the message's encoding to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for (number, value) in &self.fields {
            let wire = match value {
                Value::Varint(_) => 0,
                Value::Fixed64(_) => 1,
                Value::Bytes(_) => 2,
                Value::Fixed32(_) => 5,
            };
            put_varint(out, u64::from(*number) << 3 | wire);
            match value {
                Value::Varint(v) => put_varint(out, *v),
                Value::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::Bytes(b) => {
                    put_varint(out, b.len() as u64);
                    out.extend_from_slice(b);
                }
                Value::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }

    /// The length of the message's encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        let varint_len = |v: u64| (64 - v.max(1).leading_zeros() as usize).div_ceil(7);
        self.fields
            .iter()
            .map(|(number, value)| {
                varint_len(u64::from(*number) << 3)
                    + match value {
                        Value::Varint(v) => varint_len(*v),
                        Value::Fixed64(_) => 8,
                        Value::Bytes(b) => varint_len(b.len() as u64) + b.len(),
                        Value::Fixed32(_) => 4,
                    }
            })
            .sum()
    }

    /// Removes every field `number` that holds bytes, and gives those
    /// bytes as read.
    ///
    /// # Errors
    /// A field that was not read from the bytes the message was parsed
    /// from (one pushed since).
    pub(crate) fn take_bytes(&mut self, number: u32) -> Result<Vec<&'a [u8]>, String> {
        let mut taken = Vec::new();
        let mut error = None;
        self.fields.retain(|(n, v)| match v {
            Value::Bytes(Cow::Borrowed(b)) if *n == number => {
                taken.push(*b);
                false
            }
            Value::Bytes(Cow::Owned(_)) if *n == number => {
                error = Some(format!("field {number} was not parsed"));
                true
            }
            _ => true,
        });
        error.map_or(Ok(taken), Err)
    }

    /// Every length-delimited value of field `number`.
    pub(crate) fn bytes(&self, number: u32) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().filter_map(move |(n, v)| match v {
            Value::Bytes(b) if *n == number => Some(b.as_ref()),
            _ => None,
        })
    }

    /// Field `number` as a string (the last one, as protobuf reads a
    /// repeated scalar); "" when absent.
    pub(crate) fn string(&self, number: u32) -> String {
        self.bytes(number).last().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
    }

    pub(crate) fn strings(&self, number: u32) -> Vec<String> {
        self.bytes(number).map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    pub(crate) fn varint(&self, number: u32) -> Option<u64> {
        self.fields.iter().rev().find_map(|(n, v)| match v {
            Value::Varint(x) if *n == number => Some(*x),
            _ => None,
        })
    }

    pub(crate) fn fixed32(&self, number: u32) -> Option<u32> {
        self.fields.iter().rev().find_map(|(n, v)| match v {
            Value::Fixed32(x) if *n == number => Some(*x),
            _ => None,
        })
    }

    /// A repeated varint field, packed or not.
    pub(crate) fn varints(&self, number: u32) -> Result<Vec<u64>, String> {
        let mut out = Vec::new();
        for (n, v) in &self.fields {
            match v {
                Value::Varint(x) if *n == number => out.push(*x),
                Value::Bytes(b) if *n == number => {
                    let mut packed: &[u8] = b;
                    while !packed.is_empty() {
                        out.push(varint(&mut packed)?);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// A repeated 32-bit field, packed or not.
    pub(crate) fn fixed32s(&self, number: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for (n, v) in &self.fields {
            match v {
                Value::Fixed32(x) if *n == number => out.push(*x),
                Value::Bytes(b) if *n == number => {
                    out.extend(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                }
                _ => {}
            }
        }
        out
    }

    pub(crate) fn remove(&mut self, number: u32) {
        self.fields.retain(|(n, _)| *n != number);
    }

    pub(crate) fn push(&mut self, number: u32, value: Value<'a>) {
        self.fields.push((number, value));
    }

    pub(crate) fn push_string(&mut self, number: u32, text: &str) {
        self.push(number, Value::Bytes(Cow::Owned(text.as_bytes().to_vec())));
    }

    /// A repeated varint field, written packed.
    pub(crate) fn push_varints(&mut self, number: u32, values: impl IntoIterator<Item = u64>) {
        let mut packed = Vec::new();
        for v in values {
            put_varint(&mut packed, v);
        }
        self.push(number, Value::Bytes(Cow::Owned(packed)));
    }

    /// A nested message, written as field `number`.
    pub(crate) fn push_message(&mut self, number: u32, message: &Message<'_>) {
        self.push(number, Value::Bytes(Cow::Owned(message.to_bytes())));
    }
}

/// Appends field `number` holding `message`, without an intermediate copy.
pub(crate) fn write_message(out: &mut Vec<u8>, number: u32, message: &Message<'_>) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, message.encoded_len() as u64);
    message.write(out);
}

/// Appends field `number` holding `bytes`.
pub(crate) fn write_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err(format!("truncated: {len} bytes wanted, {} left", bytes.len()));
    }
    let (head, tail) = bytes.split_at(len);
    *bytes = tail;
    Ok(head)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let [byte, rest @ ..] = *bytes else { return Err("truncated varint".to_owned()) };
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".to_owned())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_come_back_byte_for_byte() {
        let mut inner = Message::default();
        inner.push_string(1, "conv");
        inner.push_varints(8, [1, 300, u64::MAX]);
        let mut outer = Message::default();
        outer.push(2, Value::Varint(150));
        outer.push_message(7, &inner);
        outer.push(3, Value::Fixed32(1.5f32.to_bits()));
        outer.push(4, Value::Fixed64(7));
        let bytes = outer.to_bytes();
        assert_eq!(outer.encoded_len(), bytes.len());
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed, outer);
        assert_eq!(parsed.to_bytes(), bytes);
        let mut nested = Vec::new();
        write_message(&mut nested, 7, &inner);
        assert_eq!(nested, Message { fields: vec![outer.fields[1].clone()] }.to_bytes());
        let inner = Message::parse(parsed.bytes(7).next().unwrap()).unwrap();
        assert_eq!(inner.string(1), "conv");
        assert_eq!(inner.varints(8).unwrap(), [1, 300, u64::MAX]);
        assert_eq!(parsed.fixed32(3).map(f32::from_bits), Some(1.5));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut m = Message::default();
        m.push_string(1, "a name");
        let bytes = m.to_bytes();
        let err = Message::parse(&bytes[..bytes.len() - 2]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        assert!(Message::parse(&[0x0b]).unwrap_err().contains("wire type 3"));
    }
}
