//! A frame as the HTTP source journals it: what the device sent and what
//! the source decided (id, tenant, camera, times), in a small binary form.
//!
//! `version: u8 = 2 | frame_id | tenant | source_id | seq: u64 |
//! event_time: i64 | ingest_time: i64 | media: u8 | late: u8 (0 or 1) |
//! [watermark: i64 if late] | bytes`, strings as `len: u32 | utf-8`,
//! integers little endian, the image to the end.
//!
//! The late mark is journaled because it depends on the frames that came
//! before, some of which may be behind a checkpoint when the journal is
//! replayed. Version 1 records, which lack it, are still read.

use engine::model::{Frame, MediaType};

const VERSION: u8 = 2;

pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.bytes.len() + 96);
    out.push(VERSION);
    for text in [&frame.frame_id, &frame.tenant, &frame.source_id] {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&frame.seq.to_le_bytes());
    out.extend_from_slice(&frame.event_time.to_le_bytes());
    out.extend_from_slice(&frame.ingest_time.to_le_bytes());
    out.push(match frame.media_type {
        MediaType::Jpeg => 0,
        MediaType::Png => 1,
        MediaType::Webp => 2,
    });
    match frame.late {
        None => out.push(0),
        Some(watermark) => {
            out.push(1);
            out.extend_from_slice(&watermark.to_le_bytes());
        }
    }
    out.extend_from_slice(&frame.bytes);
    out
}

/// # Errors
/// A record that is not a frame of this version (the journal's checksum
/// passed, so this is a record of another version).
pub fn decode(record: &[u8]) -> Result<Frame, String> {
    let mut rest = record;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("a journaled frame ends early".to_owned());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let version = take(1)?[0];
    if !(1..=VERSION).contains(&version) {
        return Err("a journaled frame of an unknown version".to_owned());
    }
    let mut text = || -> Result<std::sync::Arc<str>, String> {
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| "bad length")?) as usize;
        std::str::from_utf8(take(len)?).map(Into::into).map_err(|_| "a journaled name is not UTF-8".to_owned())
    };
    let (frame_id, tenant, source_id) = (text()?, text()?, text()?);
    let mut int = || -> Result<[u8; 8], String> { take(8)?.try_into().map_err(|_| "bad integer".to_owned()) };
    let seq = u64::from_le_bytes(int()?);
    let event_time = i64::from_le_bytes(int()?);
    let ingest_time = i64::from_le_bytes(int()?);
    let media_type = match take(1)?[0] {
        0 => MediaType::Jpeg,
        1 => MediaType::Png,
        2 => MediaType::Webp,
        other => return Err(format!("a journaled frame of unknown media type {other}")),
    };
    let late = match version {
        1 => None,
        _ if take(1)?[0] == 0 => None,
        _ => Some(i64::from_le_bytes(take(8)?.try_into().map_err(|_| "bad integer")?)),
    };
    Ok(Frame {
        frame_id,
        tenant,
        source_id,
        seq,
        event_time,
        ingest_time,
        media_type,
        bytes: rest.into(),
        late,
        refused: None,
    })
}

/// Whether the record carries its late mark (version 2 on); for one that
/// does not, the mark is decided again at replay.
pub fn has_late_mark(record: &[u8]) -> bool {
    record.first().is_some_and(|v| *v >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_comes_back_as_it_went() {
        let frame = Frame {
            frame_id: "00ff".into(),
            tenant: "acme".into(),
            source_id: "gate-1".into(),
            seq: 7,
            event_time: 1_767_225_600_123,
            ingest_time: 1_767_225_600_456,
            media_type: MediaType::Png,
            bytes: vec![0x89, b'P', b'N', b'G'].into(),
            late: None,
            refused: None,
        };
        let back = decode(&encode(&frame)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{frame:?}"));
        assert!(decode(&encode(&frame)[..10]).is_err());
        let late = Frame { late: Some(1_767_225_599_000), ..frame };
        assert_eq!(decode(&encode(&late)).unwrap().late, Some(1_767_225_599_000));
    }
}
