//! The webcast wire format: push frames, gzip, fetch results. Shared by the live client, the
//! demo (which builds real frames) and replay, so all three go through one decode path.
//!
//! Every input is bounded: a frame over [`MAX_FRAME_BYTES`] or gzip that inflates past
//! [`MAX_INFLATED_BYTES`] is an error value, like bytes that are not protobuf. Callers log it
//! and go on with the next frame.

use std::io::{Read, Write};

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
pub fn decode_fetch_result(bytes: &[u8]) -> Result<ProtoMessageFetchResult, FrameError> {
    if bytes.len() > MAX_INFLATED_BYTES {
        return Err(FrameError::TooLarge {
            size: bytes.len(),
            limit: MAX_INFLATED_BYTES,
        });
    }
    ProtoMessageFetchResult::decode(bytes).map_err(FrameError::NotAFetchResult)
}

/// Decodes a whole `msg` push frame down to its fetch result.
pub fn decode_msg_frame(
    bytes: &[u8],
) -> Result<(WebcastPushFrame, ProtoMessageFetchResult), FrameError> {
    let frame = decode_push_frame(bytes)?;
    let result = decode_fetch_result(&frame_payload(&frame)?)?;
    Ok((frame, result))
}

/// Inflates gzip, refusing output past [`MAX_INFLATED_BYTES`] (a gzip bomb stays small).
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let decoder = flate2::read::GzDecoder::new(bytes);
    decoder
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(FrameError::Gzip)?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(FrameError::InflatedTooLarge {
            limit: MAX_INFLATED_BYTES,
        });
    }
    Ok(out)
}

/// Compresses with gzip (the demo and tests build frames as TikTok sends them).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Wraps a message as the fetch result's `BaseProtoMessage`.
pub fn base_message(method: &str, msg_id: i64, payload: &impl Message) -> BaseProtoMessage {
    BaseProtoMessage {
        method: method.to_string(),
        payload: payload.encode_to_vec(),
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
