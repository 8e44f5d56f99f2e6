//! Implementation for `miniz_oxide` rust backend.

use alloc::boxed::Box;
#[cfg(not(feature = "store-only"))]
use core::convert::TryInto;
use core::fmt;

#[cfg(not(feature = "store-only"))]
use ::miniz_oxide::deflate::core::CompressorOxide;
use ::miniz_oxide::inflate::stream::{FullReset, InflateState};
pub use ::miniz_oxide::*;

pub const MZ_NO_FLUSH: isize = MZFlush::None as isize;
pub const MZ_PARTIAL_FLUSH: isize = MZFlush::Partial as isize;
pub const MZ_SYNC_FLUSH: isize = MZFlush::Sync as isize;
pub const MZ_FULL_FLUSH: isize = MZFlush::Full as isize;
pub const MZ_FINISH: isize = MZFlush::Finish as isize;

use super::*;
use crate::mem;

// miniz_oxide doesn't provide any error messages (yet?)
#[derive(Clone, Default)]
pub struct ErrorMessage;

impl ErrorMessage {
    pub fn get(&self) -> Option<&str> {
        None
    }
}

fn format_from_bool(zlib_header: bool) -> DataFormat {
    if zlib_header {
        DataFormat::Zlib
    } else {
        DataFormat::Raw
    }
}

pub struct Inflate {
    inner: Box<InflateState>,
    total_in: u64,
    total_out: u64,
}

impl fmt::Debug for Inflate {
    fn fmt(&self, f: &mut fmt::Formatter) -> Result<(), fmt::Error> {
        write!(
            f,
            "miniz_oxide inflate internal state. total_in: {}, total_out: {}",
            self.total_in, self.total_out,
        )
    }
}

impl From<FlushDecompress> for MZFlush {
    fn from(value: FlushDecompress) -> Self {
        match value {
            FlushDecompress::None => Self::None,
            FlushDecompress::Sync => Self::Sync,
            FlushDecompress::Finish => Self::Finish,
        }
    }
}

impl InflateBackend for Inflate {
    fn make(zlib_header: bool, _window_bits: u8) -> Self {
        let format = format_from_bool(zlib_header);

        Inflate {
            inner: InflateState::new_boxed(format),
            total_in: 0,
            total_out: 0,
        }
    }

    fn decompress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        flush: FlushDecompress,
    ) -> Result<Status, DecompressError> {
        let mz_flush = flush.into();
        let res = inflate::stream::inflate(&mut self.inner, input, output, mz_flush);
        self.total_in += res.bytes_consumed as u64;
        self.total_out += res.bytes_written as u64;

        match res.status {
            Ok(status) => match status {
                MZStatus::Ok => Ok(Status::Ok),
                MZStatus::StreamEnd => Ok(Status::StreamEnd),
                MZStatus::NeedDict => {
                    mem::decompress_need_dict(self.inner.decompressor().adler32().unwrap_or(0))
                }
            },
            Err(status) => match status {
                MZError::Buf => Ok(Status::BufError),
                _ => mem::decompress_failed(ErrorMessage),
            },
        }
    }

    fn reset(&mut self, zlib_header: bool) {
        self.inner
            .reset_as(FullReset(format_from_bool(zlib_header)));
        self.total_in = 0;
        self.total_out = 0;
    }
}

impl Backend for Inflate {
    #[inline]
    fn total_in(&self) -> u64 {
        self.total_in
    }

    #[inline]
    fn total_out(&self) -> u64 {
        self.total_out
    }
}

impl From<FlushCompress> for MZFlush {
    fn from(value: FlushCompress) -> Self {
        match value {
            FlushCompress::None => Self::None,
            FlushCompress::Partial => Self::Partial,
            FlushCompress::Sync => Self::Sync,
            FlushCompress::Full => Self::Full,
            FlushCompress::Finish => Self::Finish,
        }
    }
}

#[cfg(not(feature = "store-only"))]
pub struct Deflate {
    inner: Box<CompressorOxide>,
    total_in: u64,
    total_out: u64,
}

#[cfg(not(feature = "store-only"))]
impl fmt::Debug for Deflate {
    fn fmt(&self, f: &mut fmt::Formatter) -> Result<(), fmt::Error> {
        write!(
            f,
            "miniz_oxide deflate internal state. total_in: {}, total_out: {}",
            self.total_in, self.total_out,
        )
    }
}

#[cfg(not(feature = "store-only"))]
impl DeflateBackend for Deflate {
    fn make(level: Compression, zlib_header: bool, _window_bits: u8) -> Self {
        // Check in case the integer value changes at some point. Unlike the other zlib
        // implementations, miniz_oxide actually has a compression level 10.
        debug_assert!(level.level() <= 10);

        let mut inner: Box<CompressorOxide> = Box::default();
        let format = format_from_bool(zlib_header);
        inner.set_format_and_level(format, level.level().try_into().unwrap_or(1));

        Deflate {
            inner,
            total_in: 0,
            total_out: 0,
        }
    }

    fn compress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        flush: FlushCompress,
    ) -> Result<Status, CompressError> {
        let mz_flush = flush.into();
        let res = deflate::stream::deflate(&mut self.inner, input, output, mz_flush);
        self.total_in += res.bytes_consumed as u64;
        self.total_out += res.bytes_written as u64;

        match res.status {
            Ok(status) => match status {
                MZStatus::Ok => Ok(Status::Ok),
                MZStatus::StreamEnd => Ok(Status::StreamEnd),
                MZStatus::NeedDict => mem::compress_failed(ErrorMessage),
            },
            Err(status) => match status {
                MZError::Buf => Ok(Status::BufError),
                _ => mem::compress_failed(ErrorMessage),
            },
        }
    }

    fn reset(&mut self) {
        self.total_in = 0;
        self.total_out = 0;
        self.inner.reset();
    }
}

/// Patched in (feature `store-only`): an encoder that writes stored DEFLATE
/// blocks, the data as it is behind a 5-byte header per block of at most
/// 65,535 bytes (RFC 1951 3.2.4), inside a zlib header and Adler-32 when
/// asked. Any inflater reads it; no compressor is linked (see PATCHED.md).
#[cfg(feature = "store-only")]
#[derive(Debug)]
pub struct Deflate {
    zlib_header: bool,
    /// Output made but not yet handed out: the block being written.
    pending: alloc::vec::Vec<u8>,
    started: bool,
    adler: (u32, u32),
    finished: bool,
    total_in: u64,
    total_out: u64,
}

#[cfg(feature = "store-only")]
impl DeflateBackend for Deflate {
    fn make(_level: Compression, zlib_header: bool, _window_bits: u8) -> Self {
        Deflate {
            zlib_header,
            pending: alloc::vec::Vec::new(),
            started: false,
            adler: (1, 0),
            finished: false,
            total_in: 0,
            total_out: 0,
        }
    }

    fn compress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        flush: FlushCompress,
    ) -> Result<Status, CompressError> {
        let (mut read, mut written) = (0, 0);
        if self.zlib_header && !self.started {
            // CMF: deflate, 32 KiB window; FLG: fastest, no dictionary, check bits.
            self.pending.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        loop {
            let n = self.pending.len().min(output.len() - written);
            output[written..written + n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            written += n;
            if !self.pending.is_empty() || self.finished {
                break;
            }
            if read < input.len() {
                // A block starts on a byte, so its header is one byte (BFINAL 0,
                // BTYPE 00), then LEN and NLEN.
                let data = &input[read..read + (input.len() - read).min(65_535)];
                let len = data.len() as u16;
                self.pending.push(0);
                self.pending.extend_from_slice(&len.to_le_bytes());
                self.pending.extend_from_slice(&(!len).to_le_bytes());
                self.pending.extend_from_slice(data);
                let (mut a, mut b) = self.adler;
                for &byte in data.iter().filter(|_| self.zlib_header) {
                    a = (a + u32::from(byte)) % 65_521;
                    b = (b + a) % 65_521;
                }
                self.adler = (a, b);
                read += data.len();
            } else if matches!(flush, FlushCompress::Finish) {
                // An empty final block ends the stream.
                self.pending.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
                if self.zlib_header {
                    let (a, b) = self.adler;
                    self.pending.extend_from_slice(&((b << 16) | a).to_be_bytes());
                }
                self.finished = true;
            } else {
                break;
            }
        }
        self.total_in += read as u64;
        self.total_out += written as u64;
        Ok(if self.finished && self.pending.is_empty() {
            Status::StreamEnd
        } else if read == 0 && written == 0 {
            Status::BufError
        } else {
            Status::Ok
        })
    }

    fn reset(&mut self) {
        *self = Self::make(Compression::none(), self.zlib_header, 0);
    }
}

impl Backend for Deflate {
    #[inline]
    fn total_in(&self) -> u64 {
        self.total_in
    }

    #[inline]
    fn total_out(&self) -> u64 {
        self.total_out
    }
}
