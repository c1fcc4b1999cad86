//! The wire: request decoding ([`decode`], [`inline`]) and reply encoding
//! ([`encode`]) for RESP2 and RESP3.

pub mod decode;
pub mod encode;
pub mod inline;

pub use decode::{Argv, ProtocolError, RequestDecoder};
pub use encode::encode_reply;

/// The protocol a client speaks; RESP2 until it sends `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}
