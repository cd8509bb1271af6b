//! Just enough of protobuf's wire format to edit an ONNX file.
//!
//! A message is its fields in the order they came, each kept as it was, so
//! what frameflow does not touch is written back byte for byte. Nothing
//! here knows ONNX's schema; [`super::graph`] does.

/// One field's value, by wire type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Varint(u64),
    Fixed64(u64),
    /// A string, a nested message, or a packed repeated field.
    Bytes(Vec<u8>),
    Fixed32(u32),
}

/// A decoded message: (field number, value) pairs in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Message {
    pub(crate) fields: Vec<(u32, Value)>,
}

impl Message {
    pub(crate) fn parse(mut bytes: &[u8]) -> Result<Message, String> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = u32::try_from(key >> 3).map_err(|_| format!("field number {} out of range", key >> 3))?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut bytes)?),
                1 => Value::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().map_err(|_| "short field")?)),
                2 => {
                    let len = usize::try_from(varint(&mut bytes)?).map_err(|_| "field too long")?;
                    Value::Bytes(take(&mut bytes, len)?.to_vec())
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
        for (number, value) in &self.fields {
            let wire = match value {
                Value::Varint(_) => 0,
                Value::Fixed64(_) => 1,
                Value::Bytes(_) => 2,
                Value::Fixed32(_) => 5,
            };
            put_varint(&mut out, u64::from(*number) << 3 | wire);
            match value {
                Value::Varint(v) => put_varint(&mut out, *v),
                Value::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::Bytes(b) => {
                    put_varint(&mut out, b.len() as u64);
                    out.extend_from_slice(b);
                }
                Value::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        out
    }

    /// Every length-delimited value of field `number`.
    pub(crate) fn bytes(&self, number: u32) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().filter_map(move |(n, v)| match v {
            Value::Bytes(b) if *n == number => Some(b.as_slice()),
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
                    let mut packed = b.as_slice();
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

    pub(crate) fn push(&mut self, number: u32, value: Value) {
        self.fields.push((number, value));
    }

    pub(crate) fn push_string(&mut self, number: u32, text: &str) {
        self.push(number, Value::Bytes(text.as_bytes().to_vec()));
    }

    /// A repeated varint field, written packed.
    pub(crate) fn push_varints(&mut self, number: u32, values: impl IntoIterator<Item = u64>) {
        let mut packed = Vec::new();
        for v in values {
            put_varint(&mut packed, v);
        }
        self.push(number, Value::Bytes(packed));
    }
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
        outer.push(7, Value::Bytes(inner.to_bytes()));
        outer.push(3, Value::Fixed32(1.5f32.to_bits()));
        outer.push(4, Value::Fixed64(7));
        let bytes = outer.to_bytes();
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed, outer);
        assert_eq!(parsed.to_bytes(), bytes);
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
