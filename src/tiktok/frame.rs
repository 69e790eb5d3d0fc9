//! The webcast wire format: push frames, gzip, fetch results. Shared by the live client, the
//! demo (which builds real frames) and replay, so all three go through one decode path.
//!
//! Every input is bounded: a frame over [`MAX_FRAME_BYTES`] or gzip that inflates past
//! [`MAX_INFLATED_BYTES`] is an error value, like bytes that are not protobuf. Callers log it
//! and go on with the next frame.

use std::io::Write;

use bytes::Bytes;
use prost::Message;

use crate::proto::{BaseProtoMessage, ProtoMessageFetchResult, PushHeader, WebcastPushFrame};

/// The largest push frame accepted. Real frames are a few KiB; a busy fetch result tens of KiB.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// The largest payload a gzip frame may inflate to.
pub const MAX_INFLATED_BYTES: usize = 16 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("bytes are not a webcast push frame ({0})")]
    NotAFrame(prost::DecodeError),
    #[error("gzip payload is corrupt ({0})")]
    Gzip(std::io::Error),
    #[error("gzip payload inflates past the {limit}-byte limit")]
    InflatedTooLarge { limit: usize },
    #[error("payload is not a webcast fetch result ({0})")]
    NotAFetchResult(prost::DecodeError),
}

/// Decodes one websocket binary message.
pub fn decode_push_frame(bytes: &[u8]) -> Result<WebcastPushFrame, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            size: bytes.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    WebcastPushFrame::decode(bytes).map_err(FrameError::NotAFrame)
}

/// The frame's payload, inflated when the `compress_type` header says gzip or the payload
/// starts with the gzip magic bytes (TikTok is reported to signal both ways).
pub fn frame_payload(frame: &WebcastPushFrame) -> Result<std::borrow::Cow<'_, [u8]>, FrameError> {
    let header_says_gzip = frame
        .headers
        .iter()
        .any(|h| h.key == "compress_type" && h.value.eq_ignore_ascii_case("gzip"));
    if header_says_gzip || frame.payload.starts_with(&GZIP_MAGIC) {
        gunzip(&frame.payload).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(&frame.payload))
    }
}

/// Decodes a fetch result (the sign server's body, or an inflated `msg` payload).
///
/// Taking the bytes as [`Bytes`] (a `Vec<u8>` converts without copying) lets every message's
/// payload point into them instead of being copied out.
pub fn decode_fetch_result(bytes: impl Into<Bytes>) -> Result<ProtoMessageFetchResult, FrameError> {
    let bytes = bytes.into();
    if bytes.len() > MAX_INFLATED_BYTES {
        return Err(FrameError::TooLarge {
            size: bytes.len(),
            limit: MAX_INFLATED_BYTES,
        });
    }
    ProtoMessageFetchResult::decode(bytes).map_err(FrameError::NotAFetchResult)
}

/// A frame's fetch result: its payload inflated if need be, then decoded.
pub fn frame_fetch_result(frame: &WebcastPushFrame) -> Result<ProtoMessageFetchResult, FrameError> {
    match frame_payload(frame)? {
        std::borrow::Cow::Owned(inflated) => decode_fetch_result(inflated),
        std::borrow::Cow::Borrowed(plain) => decode_fetch_result(Bytes::copy_from_slice(plain)),
    }
}

/// Decodes a whole `msg` push frame down to its fetch result.
pub fn decode_msg_frame(
    bytes: &[u8],
) -> Result<(WebcastPushFrame, ProtoMessageFetchResult), FrameError> {
    let frame = decode_push_frame(bytes)?;
    let result = frame_fetch_result(&frame)?;
    Ok((frame, result))
}

/// Inflates gzip, refusing output past [`MAX_INFLATED_BYTES`] (a gzip bomb stays small).
///
/// Frames are small and many, and each arrives whole, so this parses the gzip header itself
/// and inflates in one call straight into the output, with one reused inflater per thread
/// (zlib-rs: pure Rust, and faster than miniz_oxide at building each frame's Huffman tables).
/// The streaming decoders (`GzDecoder`, `flate2::Decompress`) cost more per frame than
/// everything else the pipeline does with it: they zero a 32 KiB window on every reset and copy
/// all output through it. The CRC32 and length in the trailer are checked, so corrupt data is
/// still an error.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    use zlib_rs::{Inflate, InflateFlush, Status};
    thread_local! {
        // Raw deflate: the gzip header and trailer are handled here.
        static INFLATER: std::cell::RefCell<Inflate> = std::cell::RefCell::new(Inflate::new(false, 15));
    }
    let corrupt = |why: &str| {
        FrameError::Gzip(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            why.to_string(),
        ))
    };
    let start = gzip_header_len(bytes).ok_or_else(|| corrupt("bad gzip header"))?;
    if bytes.len() < start + 8 {
        return Err(corrupt("gzip data is cut short"));
    }
    // The trailer's length field is the output size unless the data lies; deflate cannot
    // inflate more than 1032:1, so a larger claim is not believed. One byte over the limit is
    // room to notice a bomb.
    let hint = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes")) as usize;
    let limit = MAX_INFLATED_BYTES + 1;
    let mut out = vec![0u8; hint.clamp(64, bytes.len().saturating_mul(1032).clamp(64, limit))];
    let input = &bytes[start..];
    let (mut consumed, mut written) = (0usize, 0usize);
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(false);
        loop {
            // `Finish`: all input is here, so the inflater need not keep a window copy.
            let status = inflater
                .decompress(
                    &input[consumed..],
                    &mut out[written..],
                    InflateFlush::Finish,
                )
                .map_err(|e| corrupt(&format!("bad deflate data ({})", e.as_str())))?;
            consumed = inflater.total_in() as usize;
            written = inflater.total_out() as usize;
            match status {
                Status::StreamEnd => return Ok(()),
                _ if written < out.len() => return Err(corrupt("gzip data is cut short")),
                _ if out.len() >= limit => {
                    return Err(FrameError::InflatedTooLarge {
                        limit: MAX_INFLATED_BYTES,
                    });
                }
                _ => {
                    let grow = out.len().saturating_mul(2).clamp(4096, limit);
                    out.resize(grow, 0);
                }
            }
        }
    })?;
    if written > MAX_INFLATED_BYTES {
        return Err(FrameError::InflatedTooLarge {
            limit: MAX_INFLATED_BYTES,
        });
    }
    out.truncate(written);
    let trailer_at = start + consumed;
    let trailer = bytes
        .get(trailer_at..trailer_at + 8)
        .ok_or_else(|| corrupt("gzip trailer is missing"))?;
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    let want_crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    let want_len = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
    if crc.sum() != want_crc || out.len() as u32 != want_len {
        return Err(corrupt("gzip checksum does not match"));
    }
    Ok(out)
}

/// Length of the gzip member header (RFC 1952), or `None` when it is not one.
fn gzip_header_len(bytes: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if bytes.len() < 10 || bytes[0..2] != GZIP_MAGIC || bytes[2] != 8 {
        return None;
    }
    let flags = bytes[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize;
        at += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += bytes.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= bytes.len()).then_some(at)
}

/// Compresses with gzip (the demo and tests build frames as TikTok sends them).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Whether a push frame of this `payload_type` carries a fetch result with messages: `msg`,
/// and the answer to `im_enter_room` (which may hold the room's welcome and recent comments).
/// The live session and the pipeline (replays of recorded frames) read the same types.
pub fn carries_messages(payload_type: &str) -> bool {
    matches!(payload_type, "msg" | "im_enter_room_resp")
}

/// Wraps a message as the fetch result's `BaseProtoMessage`.
pub fn base_message(method: &str, msg_id: i64, payload: &impl Message) -> BaseProtoMessage {
    BaseProtoMessage {
        method: method.to_string(),
        payload: payload.encode_to_vec().into(),
        msg_id,
        ..Default::default()
    }
}

/// Builds a `msg` push frame around a fetch result, gzip-compressed or plain.
pub fn msg_frame(
    seq_id: i64,
    log_id: i64,
    result: &ProtoMessageFetchResult,
    compress: bool,
) -> WebcastPushFrame {
    let raw = result.encode_to_vec();
    let (payload, headers) = if compress {
        (
            gzip(&raw),
            vec![PushHeader {
                key: "compress_type".into(),
                value: "gzip".into(),
            }],
        )
    } else {
        (raw, Vec::new())
    };
    WebcastPushFrame {
        seq_id,
        log_id,
        headers,
        payload_encoding: "pb".into(),
        payload_type: "msg".into(),
        payload,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunzip_round_trips_and_refuses_corruption_and_bombs() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(gunzip(&gzip(&data)).unwrap(), data);
        assert_eq!(gunzip(&gzip(b"")).unwrap(), b"");
        // Headers with a file name and extra field, as other gzip writers make them.
        let mut named = flate2::GzBuilder::new()
            .filename("x.bin")
            .extra(vec![1, 2, 3])
            .comment("c")
            .write(Vec::new(), flate2::Compression::default());
        named.write_all(b"hello").unwrap();
        assert_eq!(gunzip(&named.finish().unwrap()).unwrap(), b"hello");

        let mut flipped = gzip(&data);
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        assert!(gunzip(&flipped).is_err());
        let good = gzip(&data);
        assert!(gunzip(&good[..good.len() - 3]).is_err(), "cut short");
        assert!(gunzip(&good[..20]).is_err(), "cut short");
        assert!(gunzip(b"\x1f\x8b\x08").is_err());
        assert!(matches!(
            gunzip(&gzip(&vec![0u8; MAX_INFLATED_BYTES + 1])),
            Err(FrameError::InflatedTooLarge { .. })
        ));
        // The inflater is reused: a bad frame does not spoil the next one.
        assert_eq!(gunzip(&gzip(b"after")).unwrap(), b"after");
    }
}
