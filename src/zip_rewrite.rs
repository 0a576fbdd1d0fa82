//! Rewrite a few entries of a plain zip and copy every other entry as it is, with the fewest
//! copies the OS allows: each unchanged entry (its local header, name, extra field, compressed
//! data and data descriptor, as they are in the source) goes from the source file to the
//! destination with `copy_file_range(2)` (std's `io::copy` between two files), so its bytes never
//! pass through this process. The entries keep their order; the central directory is the
//! source's, each record with its entry's new local header offset (and a rewritten entry's CRC and
//! sizes); the end record is the source's with the directory's new place and size.
//!
//! Only the layout of APPNOTE 6.3.10 section 4.3 without its extensions is handled: no Zip64
//! (4.3.14-4.3.15, extra field 0x0001), no encryption (general purpose bits 0, 6 and 13, AES
//! method 99), one disk, no bytes before the first entry or between the central directory and its
//! end record, and a data descriptor (bit 3) only in the 12- or 16-byte form whose values match the
//! central directory. For anything else [`Layout::read`] answers why, and the caller copies the zip
//! through the zip crate instead.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const LOCAL_LEN: usize = 30;
const CENTRAL_LEN: usize = 46;
const END_LEN: usize = 22;
/// General purpose bits: encrypted, data descriptor, strong encryption, masked central directory.
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG: u16 = 1 << 6;
const FLAG_MASKED: u16 = 1 << 13;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const METHOD_AES: u16 = 99;
const ZIP64_EXTRA: u16 = 0x0001;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Whether an extra field (a run of id, length, data blocks) holds a Zip64 block; a run that does
/// not parse counts as unusual too.
fn has_zip64(mut extra: &[u8]) -> bool {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
        if id == ZIP64_EXTRA || extra.len() < 4 + len {
            return true;
        }
        extra = &extra[4 + len..];
    }
    !extra.is_empty()
}

/// A new content for an entry: its local header (the source's, with the CRC and sizes filled in
/// and no data descriptor) and its compressed bytes.
struct Replaced {
    header: Vec<u8>,
    data: Vec<u8>,
}

struct Entry {
    /// where the entry starts in the source (its local header)
    start: u64,
    /// the length of local header, name, extra, data and descriptor in the source
    len: u64,
    /// the central directory record (fixed part, name, extra, comment)
    central: Vec<u8>,
    replaced: Option<Replaced>,
}

/// A zip's entries as byte ranges of the source, in central directory order.
pub struct Layout {
    entries: Vec<Entry>,
    /// the end of central directory record and the archive comment
    end: Vec<u8>,
}

impl Layout {
    /// The layout of `src` when it is a plain zip; otherwise why not (the caller falls back).
    /// `header_starts` are the zip reader's local header offsets by index: the layout must agree
    /// with the reader the caller inspected the entries with.
    pub fn read(src: &File, header_starts: &[u64]) -> Result<Layout, String> {
        let len = src.metadata().map_err(|e| e.to_string())?.len();
        let tail_len = len.min((END_LEN + u16::MAX as usize) as u64);
        let mut tail = vec![0u8; tail_len as usize];
        src.read_exact_at(&mut tail, len - tail_len)
            .map_err(|e| e.to_string())?;
        // the end record: the last signature whose comment reaches exactly to the end of the file
        let at = (0..tail.len().saturating_sub(END_LEN - 1))
            .rev()
            .find(|&i| {
                u32_at(&tail, i) == END_SIG
                    && i + END_LEN + u16_at(&tail, i + 20) as usize == tail.len()
            })
            .ok_or("no end of central directory record at the end of the file")?;
        let end = tail[at..].to_vec();
        let end_pos = len - tail_len + at as u64;
        if at >= 20 && u32_at(&tail, at - 20) == ZIP64_LOCATOR_SIG {
            return Err("a Zip64 archive".into());
        }
        let (disk, cd_disk) = (u16_at(&end, 4), u16_at(&end, 6));
        let (here, total) = (u16_at(&end, 8), u16_at(&end, 10));
        let (cd_size, cd_start) = (u32_at(&end, 12) as u64, u32_at(&end, 16) as u64);
        if total == u16::MAX || cd_size == u32::MAX as u64 || cd_start == u32::MAX as u64 {
            return Err("a Zip64 archive".into());
        }
        if disk != 0 || cd_disk != 0 || here != total {
            return Err("a multi-disk archive".into());
        }
        if total as usize != header_starts.len() {
            return Err("an end record whose entry count differs from the zip reader's".into());
        }
        if cd_start + cd_size != end_pos {
            return Err(
                "the central directory is not where its end record says (bytes before the first entry, or after the directory)"
                    .into(),
            );
        }
        let mut cd = vec![0u8; cd_size as usize];
        src.read_exact_at(&mut cd, cd_start)
            .map_err(|e| e.to_string())?;
        let mut entries = Vec::with_capacity(header_starts.len());
        let mut at = 0usize;
        for (i, &header_start) in header_starts.iter().enumerate() {
            if cd.len() < at + CENTRAL_LEN || u32_at(&cd, at) != CENTRAL_SIG {
                return Err(format!(
                    "central directory record {i} is not where expected"
                ));
            }
            let rec = &cd[at..];
            let flags = u16_at(rec, 8);
            let method = u16_at(rec, 10);
            let (crc, csize, usize_) = (u32_at(rec, 16), u32_at(rec, 20), u32_at(rec, 24));
            let (name_len, extra_len, comment_len) = (
                u16_at(rec, 28) as usize,
                u16_at(rec, 30) as usize,
                u16_at(rec, 32) as usize,
            );
            let (disk_start, offset) = (u16_at(rec, 34), u32_at(rec, 42));
            let rec_len = CENTRAL_LEN + name_len + extra_len + comment_len;
            if rec.len() < rec_len {
                return Err(format!("central directory record {i} is cut short"));
            }
            if flags & (FLAG_ENCRYPTED | FLAG_STRONG | FLAG_MASKED) != 0 || method == METHOD_AES {
                return Err(format!("entry {i} is encrypted"));
            }
            if csize == u32::MAX
                || usize_ == u32::MAX
                || offset == u32::MAX
                || disk_start == u16::MAX
                || has_zip64(&rec[CENTRAL_LEN + name_len..CENTRAL_LEN + name_len + extra_len])
            {
                return Err(format!("entry {i} is a Zip64 entry"));
            }
            if disk_start != 0 {
                return Err(format!("entry {i} starts on another disk"));
            }
            if offset as u64 != header_start {
                return Err(format!(
                    "entry {i} is not where the zip reader found it (bytes before the first entry)"
                ));
            }
            let mut local = [0u8; LOCAL_LEN];
            src.read_exact_at(&mut local, header_start)
                .map_err(|e| format!("entry {i}: {e}"))?;
            if u32_at(&local, 0) != LOCAL_SIG {
                return Err(format!("entry {i} has no local header"));
            }
            let local_flags = u16_at(&local, 6);
            if local_flags & (FLAG_ENCRYPTED | FLAG_STRONG) != 0
                || (local_flags ^ flags) & FLAG_DESCRIPTOR != 0
                || u16_at(&local, 8) != method
            {
                return Err(format!(
                    "entry {i}'s local header and central directory record disagree"
                ));
            }
            let head_len = LOCAL_LEN as u64 + u16_at(&local, 26) as u64 + u16_at(&local, 28) as u64;
            let mut header = vec![0u8; head_len as usize];
            src.read_exact_at(&mut header, header_start)
                .map_err(|e| format!("entry {i}: {e}"))?;
            let local_name = &header[LOCAL_LEN..LOCAL_LEN + u16_at(&local, 26) as usize];
            if local_name != &rec[CENTRAL_LEN..CENTRAL_LEN + name_len] {
                return Err(format!(
                    "entry {i}'s local header names another file than its central directory record"
                ));
            }
            if has_zip64(&header[LOCAL_LEN + local_name.len()..]) {
                return Err(format!("entry {i} is a Zip64 entry"));
            }
            let data_end = header_start + head_len + csize as u64;
            let descriptor = if flags & FLAG_DESCRIPTOR == 0 {
                0
            } else {
                let mut d = [0u8; 16];
                let avail = cd_start.saturating_sub(data_end).min(16) as usize;
                src.read_exact_at(&mut d[..avail], data_end)
                    .map_err(|e| format!("entry {i}: {e}"))?;
                let matches = |b: &[u8]| {
                    b.len() >= 12
                        && u32_at(b, 0) == crc
                        && u32_at(b, 4) == csize
                        && u32_at(b, 8) == usize_
                };
                if avail == 16 && u32_at(&d, 0) == DESCRIPTOR_SIG && matches(&d[4..]) {
                    16
                } else if matches(&d[..avail]) {
                    12
                } else {
                    return Err(format!(
                        "entry {i}'s data descriptor is not one this copy knows"
                    ));
                }
            };
            let entry_end = data_end + descriptor;
            if entry_end > cd_start {
                return Err(format!("entry {i} runs into the central directory"));
            }
            entries.push(Entry {
                start: header_start,
                len: entry_end - header_start,
                central: rec[..rec_len].to_vec(),
                replaced: None,
            });
            at += rec_len;
        }
        if at != cd.len() {
            return Err("bytes after the last central directory record".into());
        }
        Ok(Layout { entries, end })
    }

    /// Give entry `i` the new content `text`, compressed with the entry's own method (stored or
    /// deflated; anything else is answered as unusual).
    pub fn replace(&mut self, src: &File, i: usize, text: &[u8]) -> Result<(), String> {
        let e = &mut self.entries[i];
        let method = u16_at(&e.central, 10);
        let data = match method {
            METHOD_STORED => text.to_vec(),
            METHOD_DEFLATED => {
                let mut enc = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(text.len() / 2),
                    flate2::Compression::default(),
                );
                enc.write_all(text).map_err(|e| e.to_string())?;
                enc.finish().map_err(|e| e.to_string())?
            }
            m => return Err(format!("entry {i} is compressed with method {m}")),
        };
        let (size, csize) = match (u32::try_from(text.len()), u32::try_from(data.len())) {
            (Ok(s), Ok(c)) if s < u32::MAX && c < u32::MAX => (s, c),
            _ => return Err(format!("entry {i} would need Zip64")),
        };
        let mut crc = flate2::Crc::new();
        crc.update(text);
        let crc = crc.sum();
        let mut fixed = [0u8; LOCAL_LEN];
        src.read_exact_at(&mut fixed, e.start)
            .map_err(|e| format!("entry {i}: {e}"))?;
        let head_len = LOCAL_LEN + u16_at(&fixed, 26) as usize + u16_at(&fixed, 28) as usize;
        let mut header = vec![0u8; head_len];
        src.read_exact_at(&mut header, e.start)
            .map_err(|e| format!("entry {i}: {e}"))?;
        // the sizes now go in the headers: no data descriptor
        let flags = u16_at(&header, 6) & !FLAG_DESCRIPTOR;
        put_u16(&mut header, 6, flags);
        put_u32(&mut header, 14, crc);
        put_u32(&mut header, 18, csize);
        put_u32(&mut header, 22, size);
        let flags = u16_at(&e.central, 8) & !FLAG_DESCRIPTOR;
        put_u16(&mut e.central, 8, flags);
        put_u32(&mut e.central, 16, crc);
        put_u32(&mut e.central, 20, csize);
        put_u32(&mut e.central, 24, size);
        e.len = (header.len() + data.len()) as u64;
        e.replaced = Some(Replaced { header, data });
        Ok(())
    }

    /// Lay the entries out one after another from offset 0 and point the central directory and
    /// its end record at their new places; answers unusual when the result would need Zip64, so
    /// the caller can still fall back before anything is written.
    pub fn place(&mut self) -> Result<(), String> {
        let mut pos = 0u64;
        for e in &mut self.entries {
            let offset = u32::try_from(pos)
                .ok()
                .filter(|o| *o < u32::MAX)
                .ok_or("the rewritten zip would need Zip64")?;
            put_u32(&mut e.central, 42, offset);
            pos += e.len;
        }
        let cd_size: u64 = self.entries.iter().map(|e| e.central.len() as u64).sum();
        match (u32::try_from(pos), u32::try_from(cd_size)) {
            (Ok(start), Ok(size)) if start < u32::MAX && size < u32::MAX => {
                put_u32(&mut self.end, 12, size);
                put_u32(&mut self.end, 16, start);
                Ok(())
            }
            _ => Err("the rewritten zip would need Zip64".into()),
        }
    }

    /// Write the zip into `dst` (empty, at offset 0): unchanged entries copied from `src` in the
    /// kernel, replaced ones written, then the central directory and end record. `each` runs
    /// after every entry.
    pub fn write(
        mut self,
        src: &File,
        dst: &File,
        mut each: impl FnMut(),
    ) -> Result<(), std::io::Error> {
        self.place().map_err(std::io::Error::other)?;
        let mut out = dst;
        for e in &self.entries {
            match &e.replaced {
                Some(r) => {
                    out.write_all(&r.header)?;
                    out.write_all(&r.data)?;
                }
                None => copy_range(src, e.start, e.len, dst)?,
            }
            each();
        }
        let mut tail: Vec<u8> = Vec::with_capacity(
            self.entries.iter().map(|e| e.central.len()).sum::<usize>() + self.end.len(),
        );
        for e in &self.entries {
            tail.extend_from_slice(&e.central);
        }
        tail.extend_from_slice(&self.end);
        out.write_all(&tail)
    }
}

/// `len` bytes of `src` from `offset` appended to `dst` at its position: std's `io::copy` between
/// two files is `copy_file_range(2)` (falling back to read and write where the kernel cannot).
fn copy_range(src: &File, offset: u64, len: u64, dst: &File) -> std::io::Result<()> {
    let mut from = src;
    from.seek(SeekFrom::Start(offset))?;
    let copied = std::io::copy(&mut from.take(len), &mut { dst })?;
    if copied != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the zip is shorter than its central directory says",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[derive(Clone, Copy)]
    enum Descriptor {
        None,
        Signed,
        Bare,
    }

    /// A stored-only zip written byte by byte after APPNOTE 4.3, each entry with or without a
    /// data descriptor (with its optional signature, or without); `flags` are added to every
    /// entry's general purpose bits.
    fn handmade(entries: &[(&str, &[u8], Descriptor)], flags: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data, form) in entries {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let (crc, size) = (crc.sum(), data.len() as u32);
            let bits = flags
                | if matches!(form, Descriptor::None) {
                    0
                } else {
                    8
                };
            let offset = out.len() as u32;
            let in_header = |v: u32| {
                if matches!(form, Descriptor::None) {
                    v
                } else {
                    0
                }
            };
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&bits.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0x21, 0]); // stored, 1980-01-01 00:00
            for v in [in_header(crc), in_header(size), in_header(size)] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            if matches!(form, Descriptor::Signed) {
                out.extend_from_slice(&DESCRIPTOR_SIG.to_le_bytes());
            }
            if !matches!(form, Descriptor::None) {
                for v in [crc, size, size] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&[20, 3, 20, 0]);
            central.extend_from_slice(&bits.to_le_bytes());
            central.extend_from_slice(&[0, 0, 0, 0, 0x21, 0]);
            for v in [crc, size, size] {
                central.extend_from_slice(&v.to_le_bytes());
            }
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let (start, size) = (out.len() as u32, central.len() as u32);
        out.extend_from_slice(&central);
        out.extend_from_slice(&END_SIG.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    /// The layout of a zip file, with the zip crate's header offsets, as the conversion reads it.
    fn layout_of(path: &std::path::Path) -> Result<Layout, String> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let starts: Vec<u64> = (0..archive.len())
            .map(|i| archive.by_index_raw(i).unwrap().header_start())
            .collect();
        Layout::read(&File::open(path).unwrap(), &starts)
    }

    /// Every entry's name and content, read (and CRC-checked) by the zip crate.
    fn contents(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut a = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        (0..a.len())
            .map(|i| {
                let mut e = a.by_index(i).unwrap();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                (e.name().to_string(), b)
            })
            .collect()
    }

    fn rewrite(src: &std::path::Path, dst: &std::path::Path, replace: &[(usize, &[u8])]) {
        let mut layout = layout_of(src).unwrap();
        let file = File::open(src).unwrap();
        for (i, text) in replace {
            layout.replace(&file, *i, text).unwrap();
        }
        layout.place().unwrap();
        let mut entries = 0;
        layout
            .write(&file, &File::create(dst).unwrap(), || entries += 1)
            .unwrap();
        assert_eq!(entries, contents(src).len());
    }

    #[test]
    fn data_descriptors_in_both_forms_are_copied_and_a_replaced_entry_loses_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("in.zip"), dir.path().join("out.zip"));
        let bytes = handmade(
            &[
                ("plain.bin", b"plain bytes", Descriptor::None),
                ("signed.conf", b"image: allegroai/x:1", Descriptor::Signed),
                ("bare.bin", b"bare descriptor bytes", Descriptor::Bare),
            ],
            0,
        );
        std::fs::write(&src, &bytes).unwrap();
        rewrite(&src, &dst, &[(1, b"image: registry.local/x:1")]);
        assert_eq!(
            contents(&dst),
            [
                ("plain.bin".to_string(), b"plain bytes".to_vec()),
                (
                    "signed.conf".to_string(),
                    b"image: registry.local/x:1".to_vec()
                ),
                ("bare.bin".to_string(), b"bare descriptor bytes".to_vec()),
            ]
        );
        let out = std::fs::read(&dst).unwrap();
        // the unchanged entries are the source's bytes: headers, data and the bare descriptor
        let plain = 30 + 9 + 11;
        assert_eq!(out[..plain], bytes[..plain]);
        let bare = &bytes[bytes.windows(8).position(|w| w == b"bare.bin").unwrap() - 30..];
        let bare = &bare[..30 + 8 + 21 + 12];
        assert!(out.windows(bare.len()).any(|w| w == bare));
        // the replaced entry: no descriptor flag, its CRC and sizes in the local header
        assert_eq!(u16_at(&out, plain + 6) & FLAG_DESCRIPTOR, 0);
        assert_eq!(u32_at(&out, plain + 18), 25);
        assert_eq!(u32_at(&out, plain + 22), 25);
        // nothing copied when nothing is replaced but the layout: the same bytes
        rewrite(&src, &dst, &[]);
        assert_eq!(std::fs::read(&dst).unwrap(), bytes);
    }

    /// A replaced entry's central record loses the descriptor flag (its sizes are there now)
    /// and keeps every other flag, such as UTF-8 names.
    #[test]
    fn a_replaced_entrys_central_record_keeps_its_other_flags() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("in.zip"), dir.path().join("out.zip"));
        let utf8 = 0x0800;
        let bytes = handmade(
            &[("é.conf", b"image: allegroai/x:1", Descriptor::Signed)],
            utf8,
        );
        std::fs::write(&src, &bytes).unwrap();
        rewrite(&src, &dst, &[(0, b"image: registry.local/x:1")]);
        assert_eq!(contents(&dst)[0].0, "é.conf");
        let out = std::fs::read(&dst).unwrap();
        let central = out
            .windows(4)
            .position(|w| w == CENTRAL_SIG.to_le_bytes())
            .unwrap();
        assert_eq!(u16_at(&out, central + 8), utf8);
    }

    /// An extra field holds Zip64 when a block says so, or when its blocks do not parse (a
    /// length past the end, bytes left over): either way it is unusual.
    #[test]
    fn an_extra_field_that_does_not_parse_is_unusual() {
        assert!(!has_zip64(&[]));
        assert!(!has_zip64(&[0xaa, 0xbb, 2, 0, 1, 2]));
        assert!(has_zip64(&[1, 0, 0, 0]));
        assert!(has_zip64(&[0xaa, 0xbb, 9, 0, 1, 2]));
        assert!(has_zip64(&[0xaa, 0xbb, 0, 0, 7]));
    }

    #[test]
    fn a_deflated_entry_is_recompressed_and_the_others_keep_their_compressed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("in.zip"), dir.path().join("out.zip"));
        {
            let mut z = zip::ZipWriter::new(File::create(&src).unwrap());
            let deflated = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            z.start_file("a.app.conf", deflated).unwrap();
            z.write_all(b"image: allegroai/a:1\n").unwrap();
            z.start_file("b.bin", deflated).unwrap();
            z.write_all(&[7u8; 100_000]).unwrap();
            z.set_comment("the archive's comment");
            z.finish().unwrap();
        }
        rewrite(&src, &dst, &[(0, b"image: registry.local/a:1\n")]);
        let got = contents(&dst);
        assert_eq!(got[0].1, b"image: registry.local/a:1\n");
        assert_eq!(got[1].1, vec![7u8; 100_000]);
        let a = zip::ZipArchive::new(File::open(&dst).unwrap()).unwrap();
        assert_eq!(a.comment(), b"the archive's comment");
    }

    #[test]
    fn zip64_encrypted_and_prefixed_zips_are_left_to_the_zip_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zip");
        {
            let mut z = zip::ZipWriter::new(File::create(&path).unwrap());
            z.start_file(
                "a.app.conf",
                zip::write::SimpleFileOptions::default().large_file(true),
            )
            .unwrap();
            z.write_all(b"image: allegroai/a:1\n").unwrap();
            z.finish().unwrap();
        }
        let why = layout_of(&path).err().expect("a Zip64 entry is refused");
        assert!(why.contains("Zip64"), "{why}");
        let entries = [("a.bin", &b"x"[..], Descriptor::None)];
        std::fs::write(&path, handmade(&entries, FLAG_ENCRYPTED)).unwrap();
        let why = layout_of(&path)
            .err()
            .expect("an encrypted entry is refused");
        assert!(why.contains("encrypted"), "{why}");
        let mut prefixed = b"#!/bin/sh\nexit 0\n".to_vec();
        prefixed.extend(handmade(&entries, 0));
        std::fs::write(&path, prefixed).unwrap();
        let why = layout_of(&path)
            .err()
            .expect("bytes before the first entry are refused");
        assert!(why.contains("before the first entry"), "{why}");
        // a local header that names another file than the central directory (the name a reader
        // trusting local headers would extract) is not copied as it is
        let mut renamed = handmade(&entries, 0);
        renamed[30] = b'b';
        std::fs::write(&path, renamed).unwrap();
        let why = layout_of(&path)
            .err()
            .expect("a local name that differs is refused");
        assert!(why.contains("names another file"), "{why}");
        // and the plain one is taken
        std::fs::write(&path, handmade(&entries, 0)).unwrap();
        assert!(layout_of(&path).is_ok());
    }

    /// A data descriptor that does not repeat its entry's CRC and sizes, an end record of a
    /// split zip, and a central directory that ends inside a record after its signature, are
    /// refused by name (not read past).
    #[test]
    fn a_wrong_data_descriptor_and_a_directory_cut_short_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zip");
        let read = |bytes: &[u8], starts: &[u64]| {
            std::fs::write(&path, bytes).unwrap();
            Layout::read(&File::open(&path).unwrap(), starts)
        };
        for form in [Descriptor::Signed, Descriptor::Bare] {
            let signed = matches!(form, Descriptor::Signed);
            let good = handmade(&[("a.bin", &b"xyz"[..], form)], 0);
            assert!(read(&good, &[0]).is_ok());
            // the descriptor's CRC, right after its optional signature, one bit off
            let crc_at = LOCAL_LEN + "a.bin".len() + 3 + if signed { 4 } else { 0 };
            let mut bad = good.clone();
            bad[crc_at] ^= 1;
            assert_eq!(
                read(&bad, &[0]).err().as_deref(),
                Some("entry 0's data descriptor is not one this copy knows")
            );
        }
        // an end record counting fewer entries on this disk than in all: part of a split zip
        let one = handmade(&[("a.bin", &b"x"[..], Descriptor::None)], 0);
        let mut split = one.clone();
        let end = split.len() - END_LEN;
        put_u16(&mut split, end + 8, 0);
        assert_eq!(
            read(&split, &[0]).err().as_deref(),
            Some("a multi-disk archive")
        );
        // two entries counted, the second record only a signature and six bytes
        let end = one.len() - END_LEN;
        let mut cut = one[..end].to_vec();
        cut.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        cut.extend_from_slice(&[0; 6]);
        cut.extend_from_slice(&one[end..]);
        let end = cut.len() - END_LEN;
        put_u16(&mut cut, end + 8, 2);
        put_u16(&mut cut, end + 10, 2);
        let cd_size = u32_at(&cut, end + 12) + 10;
        put_u32(&mut cut, end + 12, cd_size);
        assert_eq!(
            read(&cut, &[0, 0]).err().as_deref(),
            Some("central directory record 1 is not where expected")
        );
    }

    /// The Zip64 marks the zip crate may not need, each refused by name: a Zip64 end locator
    /// before the end record; a central record whose sizes, offset or disk is a Zip64 sentinel
    /// without a Zip64 extra field; a Zip64 extra field with every fixed field plain. Read with
    /// the one local header the handmade zip has.
    #[test]
    fn every_zip64_mark_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zip");
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            Layout::read(&File::open(&path).unwrap(), &[0])
        };
        let plain = handmade(&[("a.bin", &b"x"[..], Descriptor::None)], 0);
        assert!(read(&plain).is_ok());
        let end = plain.len() - END_LEN;
        let mut located = plain[..end].to_vec();
        located.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        located.extend_from_slice(&[0; 16]);
        located.extend_from_slice(&plain[end..]);
        assert_eq!(read(&located).err().as_deref(), Some("a Zip64 archive"));
        let central = (0..plain.len())
            .find(|&i| u32_at(&plain, i) == CENTRAL_SIG)
            .unwrap();
        // compressed size, uncompressed size, the local header's offset, the disk: each alone
        for field in [20, 24, 42, 34] {
            let mut marked = plain.clone();
            if field == 34 {
                put_u16(&mut marked, central + field, u16::MAX);
            } else {
                put_u32(&mut marked, central + field, u32::MAX);
            }
            assert_eq!(
                read(&marked).err().as_deref(),
                Some("entry 0 is a Zip64 entry"),
                "field {field}"
            );
        }
        // a Zip64 extra field with every fixed field plain
        let at = central + CENTRAL_LEN + u16_at(&plain, central + 28) as usize;
        let mut extra = plain[..at].to_vec();
        extra.extend_from_slice(&ZIP64_EXTRA.to_le_bytes());
        extra.extend_from_slice(&8u16.to_le_bytes());
        extra.extend_from_slice(&1u64.to_le_bytes());
        extra.extend_from_slice(&plain[at..]);
        put_u16(&mut extra, central + 30, 12);
        let end = extra.len() - END_LEN;
        let cd_size = u32_at(&extra, end + 12) + 12;
        put_u32(&mut extra, end + 12, cd_size);
        assert_eq!(
            read(&extra).err().as_deref(),
            Some("entry 0 is a Zip64 entry")
        );
    }
}
