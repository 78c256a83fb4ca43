//! Reading a GGUF file's header and metadata: candle's [`gguf_file::Content::read`].
//!
//! Users point ragd at GGUF files on disk, so a malformed file must give an error. candle 0.11
//! bounds every declared string and array length by the file size (a huge length is an error,
//! not an allocation). Public for the `gguf_raw` fuzz target, which reads files as ragd does.

use std::io::{Read, Seek};

use candle_core::quantized::gguf_file;

/// Reads the header, metadata and tensor infos of a GGUF file (nothing of the tensor data).
pub fn read_content<R: Read + Seek>(reader: &mut R) -> candle_core::Result<gguf_file::Content> {
    gguf_file::Content::read(reader)
}
