//! Protobuf request bodies, as helm writes its release Secrets (`application/vnd.kubernetes.protobuf`):
//! the `k8s\0` envelope around a `runtime.Unknown`, and inside it a Secret, ConfigMap or
//! Namespace. Decoded into the JSON the rest of the simulator stores. Anything malformed is an
//! error, never a panic.

use base64::Engine as _;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                let start = self.pos;
                self.skip(len)?;
                Field::Bytes(&self.buf[start..start + len])
            }
            5 => {
                self.skip(4)?;
                Field::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((number, field)))
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        if end > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos = end;
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

fn map_entry(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Vec::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                meta.insert("name".into(), text(x)?.into());
            }
            (2, Field::Bytes(x)) => {
                meta.insert("generateName".into(), text(x)?.into());
            }
            (3, Field::Bytes(x)) => {
                meta.insert("namespace".into(), text(x)?.into());
            }
            (5, Field::Bytes(x)) => {
                meta.insert("uid".into(), text(x)?.into());
            }
            (6, Field::Bytes(x)) => {
                meta.insert("resourceVersion".into(), text(x)?.into());
            }
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                labels.insert(k, text(&v)?.into());
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                annotations.insert(k, text(&v)?.into());
            }
            (14, Field::Bytes(x)) => finalizers.push(Value::from(text(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), labels.into());
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), annotations.into());
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), finalizers.into());
    }
    Ok(meta.into())
}

/// Decode a protobuf request body into the object's JSON.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("a protobuf body must start with the k8s\\0 envelope")?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((n, f)) = t.next()? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = Some(x),
            _ => {}
        }
    }
    let raw = raw.ok_or("the protobuf envelope holds no object")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), api_version.clone().into());
    obj.insert("kind".into(), kind.clone().into());
    let mut r = Reader::new(raw);
    let mut data = Map::new();
    let mut extra = Map::new();
    while let Some((n, f)) = r.next()? {
        let Field::Bytes(x) = f else {
            if let (Field::Varint(v), "Secret", 5) | (Field::Varint(v), "ConfigMap", 4) =
                (&f, kind.as_str(), n)
            {
                obj.insert("immutable".into(), (*v != 0).into());
            }
            continue;
        };
        match (kind.as_str(), n) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(x)?);
            }
            ("Secret", 2) => {
                let (k, v) = map_entry(x)?;
                data.insert(k, b64.encode(v).into());
            }
            ("Secret", 3) => {
                obj.insert("type".into(), text(x)?.into());
            }
            ("Secret", 4) => {
                let (k, v) = map_entry(x)?;
                extra.insert(k, text(&v)?.into());
            }
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(x)?;
                data.insert(k, text(&v)?.into());
            }
            ("ConfigMap", 3) => {
                let (k, v) = map_entry(x)?;
                extra.insert(k, b64.encode(v).into());
            }
            ("Namespace", 2) => {
                let mut s = Reader::new(x);
                let mut fins = Vec::new();
                while let Some((n, f)) = s.next()? {
                    if let (1, Field::Bytes(v)) = (n, f) {
                        fins.push(Value::from(text(v)?));
                    }
                }
                obj.insert("spec".into(), json!({"finalizers": fins}));
            }
            ("Secret" | "ConfigMap" | "Namespace", _) => {}
            (other, _) => {
                return Err(format!(
                    "protobuf bodies are served for Secret, ConfigMap and Namespace, not {other}; send JSON"
                ));
            }
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), data.into());
    }
    if !extra.is_empty() {
        let key = if kind == "Secret" {
            "stringData"
        } else {
            "binaryData"
        };
        obj.insert(key.into(), extra.into());
    }
    Ok(obj.into())
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes_field(1, k.as_bytes(), &mut e);
        bytes_field(2, v, &mut e);
        e
    }

    /// A Secret as helm sends it.
    pub fn secret_body(
        name: &str,
        namespace: &str,
        labels: &[(&str, &str)],
        data: &[u8],
    ) -> Vec<u8> {
        let mut meta = Vec::new();
        bytes_field(1, name.as_bytes(), &mut meta);
        bytes_field(3, namespace.as_bytes(), &mut meta);
        for (k, v) in labels {
            bytes_field(11, &entry(k, v.as_bytes()), &mut meta);
        }
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry("release", data), &mut secret);
        bytes_field(3, b"helm.sh/release.v1", &mut secret);
        let mut tm = Vec::new();
        bytes_field(1, b"v1", &mut tm);
        bytes_field(2, b"Secret", &mut tm);
        let mut unknown = Vec::new();
        bytes_field(1, &tm, &mut unknown);
        bytes_field(2, &secret, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        body
    }

    #[test]
    fn decodes_a_helm_release_secret() {
        let body = secret_body(
            "sh.helm.release.v1.x.v1",
            "ns",
            &[("owner", "helm"), ("name", "x")],
            b"H4sI",
        );
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.x.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["data"]["release"], "SDRzSQ==");
        assert_eq!(v["type"], "helm.sh/release.v1");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
        let mut body = secret_body("a", "b", &[], b"x");
        body.truncate(body.len() - 3);
        assert!(decode(&body).is_err());
    }
}
