//! SPDY/3.1 framing, as much as the agent needs to drive the runtime's streaming server as a
//! client (the role kubectl plays against a kubelet): the frames, and the name/value header
//! blocks, zlib-compressed with the SPDY/3 dictionary in one stateful context per direction,
//! each block ending with a sync flush.
//!
//! Flow control is not enforced: the streaming servers (Go's spdystream) neither send nor honour
//! WINDOW_UPDATE frames, so none are needed for the peer to keep sending.

use flate2::Compress;
use flate2::Compression;
use flate2::Decompress;
use flate2::FlushCompress;
use flate2::FlushDecompress;

/// The protocol version in every control frame.
const VERSION: u16 = 3;

/// The FIN flag (DATA, SYN_STREAM, SYN_REPLY, HEADERS).
const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM's UNIDIRECTIONAL flag.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS' CLEAR_SETTINGS flag.
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// The largest payload a frame's 24-bit length can carry.
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

/// RST_STREAM status CANCEL.
pub const CANCEL: u32 = 5;

/// Name/value pairs of a header block (names lowercase, as SPDY/3 requires).
pub type Headers = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY frame: {0}")]
    Malformed(String),
    #[error("SPDY header compression: {0}")]
    Compression(String),
    #[error("SPDY version {0} is not 3")]
    Version(u16),
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// Entries are (flags, id, value).
    Settings {
        clear: bool,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// A control frame of a type this module does not know (skipped, as the spec asks).
    Unknown {
        kind: u16,
    },
}

/// The SPDY/3 header compression dictionary: a fixed list of common header names and values,
/// each preceded by its 32-bit big-endian length, followed by a run of common value fragments.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &[&str] = &[
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information",
        "204 No Content",
        "301 Moved Permanently",
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "500 Internal Server Error",
        "501 Not Implemented",
        "503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    ];
    let mut out = Vec::with_capacity(1423);
    for word in WORDS {
        out.extend_from_slice(&(word.len() as u32).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    for part in TAIL {
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Encodes frames; owns the outgoing header compression context.
pub struct Encoder {
    compress: Compress,
}

/// Decodes frames; owns the incoming header decompression context.
pub struct Decoder {
    decompress: Decompress,
    dictionary: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Result<Encoder, SpdyError> {
        let mut compress = Compress::new(Compression::default(), true);
        compress.set_dictionary(&dictionary()).map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Encoder { compress })
    }

    /// Appends `frame`'s bytes to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let (kind, flags, payload) = match frame {
            Frame::Data { stream, fin, data } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(SpdyError::Malformed(format!("DATA of {} bytes", data.len())));
                }
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                out.push(if *fin { FLAG_FIN } else { 0 });
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream, associated, priority, fin, unidirectional, headers } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                p.push((priority & 0x07) << 5);
                p.push(0);
                p.extend_from_slice(&self.header_block(headers)?);
                let flags = if *fin { FLAG_FIN } else { 0 } | if *unidirectional { FLAG_UNIDIRECTIONAL } else { 0 };
                (SYN_STREAM, flags, p)
            }
            Frame::SynReply { stream, fin, headers } | Frame::Headers { stream, fin, headers } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) { SYN_REPLY } else { HEADERS };
                let mut p = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&self.header_block(headers)?);
                (kind, if *fin { FLAG_FIN } else { 0 }, p)
            }
            Frame::RstStream { stream, status } => {
                let mut p = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                (RST_STREAM, 0, p)
            }
            Frame::Settings { clear, entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (flags, id, value) in entries {
                    p.push(*flags);
                    p.extend_from_slice(&(id & 0x00ff_ffff).to_be_bytes()[1..]);
                    p.extend_from_slice(&value.to_be_bytes());
                }
                (SETTINGS, if *clear { FLAG_CLEAR_SETTINGS } else { 0 }, p)
            }
            Frame::Ping { id } => (PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway { last_good, status } => {
                let mut p = (last_good & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                (GOAWAY, 0, p)
            }
            Frame::WindowUpdate { stream, delta } => {
                let mut p = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                (WINDOW_UPDATE, 0, p)
            }
            Frame::Unknown { kind } => return Err(SpdyError::Malformed(format!("cannot encode frame type {kind}"))),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(SpdyError::Malformed(format!("control frame of {} bytes", payload.len())));
        }
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&payload);
        Ok(())
    }

    /// The compressed name/value block of `headers`.
    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for s in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s);
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.compress.total_in();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let consumed = (self.compress.total_in() - start) as usize;
            let rest = raw.get(consumed..).unwrap_or_default();
            self.compress
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            // The flush is complete once all input is in and the output was not filled.
            if (self.compress.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { decompress: Decompress::new(true), dictionary: dictionary() }
    }

    /// The first frame in `buf` and the bytes it took, or `None` while it is incomplete.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>, SpdyError> {
        let Some(head) = buf.get(..8) else { return Ok(None) };
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let Some(p) = buf.get(8..8 + len) else { return Ok(None) };
        let fin = flags & FLAG_FIN != 0;
        let word = |i: usize| -> Result<u32, SpdyError> {
            p.get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| SpdyError::Malformed(format!("a frame of {len} bytes is too short")))
        };
        if head[0] & 0x80 == 0 {
            let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some((Frame::Data { stream, fin, data: p.to_vec() }, 8 + len)));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let frame = match kind {
            SYN_STREAM => {
                let (stream, associated) = (word(0)? & 0x7fff_ffff, word(4)? & 0x7fff_ffff);
                let priority = p.get(8).map(|b| b >> 5).unwrap_or(0);
                let headers = self.header_block(p.get(10..).unwrap_or_default())?;
                let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
                Frame::SynStream { stream, associated, priority, fin, unidirectional, headers }
            }
            SYN_REPLY | HEADERS => {
                let stream = word(0)? & 0x7fff_ffff;
                let headers = self.header_block(p.get(4..).unwrap_or_default())?;
                if kind == SYN_REPLY {
                    Frame::SynReply { stream, fin, headers }
                } else {
                    Frame::Headers { stream, fin, headers }
                }
            }
            RST_STREAM => Frame::RstStream { stream: word(0)? & 0x7fff_ffff, status: word(4)? },
            SETTINGS => {
                let count = word(0)? as usize;
                let mut entries = Vec::new();
                for i in 0..count {
                    let at = 4 + i * 8;
                    let w = word(at)?;
                    entries.push(((w >> 24) as u8, w & 0x00ff_ffff, word(at + 4)?));
                }
                Frame::Settings { clear: flags & FLAG_CLEAR_SETTINGS != 0, entries }
            }
            PING => Frame::Ping { id: word(0)? },
            GOAWAY => Frame::GoAway { last_good: word(0)? & 0x7fff_ffff, status: word(4).unwrap_or(0) },
            WINDOW_UPDATE => Frame::WindowUpdate { stream: word(0)? & 0x7fff_ffff, delta: word(4)? & 0x7fff_ffff },
            other => Frame::Unknown { kind: other },
        };
        Ok(Some((frame, 8 + len)))
    }

    /// Decompresses and parses a name/value block.
    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let mut raw = Vec::with_capacity(compressed.len() * 4 + 64);
        let start = self.decompress.total_in();
        loop {
            if raw.capacity() - raw.len() < 256 {
                raw.reserve(1024);
            }
            let consumed = (self.decompress.total_in() - start) as usize;
            let rest = compressed.get(consumed..).unwrap_or_default();
            let before = (self.decompress.total_in(), raw.len());
            match self.decompress.decompress_vec(rest, &mut raw, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let done = (self.decompress.total_in() - start) as usize == compressed.len();
            if done && raw.len() < raw.capacity() {
                break;
            }
            if before == (self.decompress.total_in(), raw.len()) && raw.len() < raw.capacity() {
                return Err(SpdyError::Compression("the header block does not inflate".into()));
            }
        }
        parse_pairs(&raw)
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

fn parse_pairs(raw: &[u8]) -> Result<Headers, SpdyError> {
    let short = || SpdyError::Malformed("a truncated header block".into());
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        let s = raw.get(at..at + n).ok_or_else(short)?;
        at += n;
        Ok(s)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| short())?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for slot in &mut pair {
            let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| short())?) as usize;
            *slot = String::from_utf8_lossy(take(n)?).into_owned();
        }
        let [name, value] = pair;
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::new().expect("encoder");
        let mut dec = Decoder::new();
        let mut bytes = Vec::new();
        for f in frames {
            enc.encode(f, &mut bytes).expect("encode");
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            // Incomplete input waits for more.
            assert!(dec.decode(&bytes[at..at + 7.min(bytes.len() - at)]).expect("partial").is_none());
            let (frame, used) = dec.decode(&bytes[at..]).expect("decode").expect("complete");
            out.push(frame);
            at += used;
        }
        out
    }

    #[test]
    fn the_dictionary_is_the_specified_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b",*,enq=0."));
        // Its Adler-32, which compressed header blocks carry as their DICTID.
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&d).expect("dictionary"), 0xe3c6_a7c2);
    }

    #[test]
    fn frames_survive_a_round_trip() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: vec![("streamtype".into(), "error".into())],
            },
            Frame::SynStream {
                stream: 3,
                associated: 0,
                priority: 2,
                fin: true,
                unidirectional: true,
                headers: vec![("streamtype".into(), "stdin".into()), ("port".into(), "80".into())],
            },
            Frame::SynReply { stream: 3, fin: false, headers: Vec::new() },
            Frame::Headers { stream: 1, fin: true, headers: vec![("x".into(), "y".into())] },
            Frame::Data { stream: 3, fin: false, data: b"hello".to_vec() },
            Frame::Data { stream: 5, fin: true, data: Vec::new() },
            Frame::RstStream { stream: 3, status: CANCEL },
            Frame::Settings { clear: true, entries: vec![(1, 7, 65536), (0, 4, 100)] },
            Frame::Ping { id: 2 },
            Frame::GoAway { last_good: 7, status: 0 },
            Frame::WindowUpdate { stream: 1, delta: 1 << 20 },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn header_blocks_share_one_compression_context_per_direction() {
        // Values that do not compress on their own (a simple pseudo-random sequence).
        let mut seed = 12345u32;
        let mut word = || -> String {
            (0..24)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    char::from(b'a' + ((seed >> 16) % 26) as u8)
                })
                .collect()
        };
        let headers: Headers = (0..50).map(|i| (format!("name-{i}"), word())).collect();
        let frames: Vec<Frame> =
            (1..20).map(|i| Frame::SynReply { stream: i * 2 + 1, fin: false, headers: headers.clone() }).collect();
        let mut enc = Encoder::new().expect("encoder");
        let (mut first, mut later) = (Vec::new(), Vec::new());
        enc.encode(&frames[0], &mut first).expect("encode");
        enc.encode(&frames[1], &mut later).expect("encode");
        assert!(later.len() < first.len() / 4, "the second block refers back to the first");
        // The first block starts with a zlib header that names the dictionary.
        assert_eq!(&first[12..14], &[0x78, 0xbb]);
        assert_eq!(&first[14..18], &0xe3c6_a7c2u32.to_be_bytes());
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn unknown_control_frames_are_skipped_and_other_versions_refused() {
        let mut dec = Decoder::new();
        let unknown = [0x80, 3, 0, 42, 0, 0, 0, 2, 9, 9];
        assert_eq!(dec.decode(&unknown).expect("decode"), Some((Frame::Unknown { kind: 42 }, 10)));
        assert!(dec.decode(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]).is_err());
        assert!(dec.decode(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 1]).is_err(), "a short RST_STREAM");
    }
}
