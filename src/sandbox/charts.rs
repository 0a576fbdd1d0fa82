//! A Helm chart repository inside the sandbox, serving stand-in charts shaped like the ClearML
//! Enterprise charts (`src/sandbox/charts/`, built into the binary), so a `--sandbox` rehearsal
//! of the standard install runs without the network. Their templates render the values the
//! real charts take into the objects those values shape (ingresses, services, deployments, the
//! extra environment), not the real server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::embedded;

/// One packaged chart: its name, version and `.tgz` bytes.
pub struct Packaged {
    pub name: String,
    pub version: String,
    pub file: String,
    pub bytes: Vec<u8>,
    pub digest: String,
}

/// Package every stand-in chart as helm would (`<name>-<version>.tgz`, files under `<name>/`).
pub fn package_all() -> Result<Vec<Packaged>, String> {
    let mut by_chart: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
    for (path, bytes) in embedded::sandbox_chart_files() {
        if let Some((chart, _)) = path.split_once('/') {
            by_chart.entry(chart).or_default().push((path, bytes));
        }
    }
    let mut out = Vec::new();
    for (chart, files) in by_chart {
        let manifest = files
            .iter()
            .find(|(p, _)| *p == format!("{chart}/Chart.yaml"))
            .ok_or_else(|| format!("the stand-in chart {chart} has no Chart.yaml"))?;
        let text = std::str::from_utf8(manifest.1).map_err(|e| e.to_string())?;
        let meta = crate::site::parse_yaml(text)?;
        let field = |k: &str| match meta.at_path(k) {
            Some(crate::value::Value::Str(s)) => Ok(s.clone()),
            _ => Err(format!("the stand-in chart {chart} has no {k}")),
        };
        let (name, version) = (field("name")?, field("version")?);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        {
            let mut tar = tar::Builder::new(&mut gz);
            for (path, bytes) in &files {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_cksum();
                tar.append_data(&mut header, path, *bytes)
                    .map_err(|e| e.to_string())?;
            }
            tar.finish().map_err(|e| e.to_string())?;
        }
        let bytes = gz.finish().map_err(|e| e.to_string())?;
        let digest = sha256_hex(&bytes);
        out.push(Packaged {
            file: format!("{name}-{version}.tgz"),
            name,
            version,
            bytes,
            digest,
        });
    }
    Ok(out)
}

/// The repository's `index.yaml`, with chart URLs under `base_url`.
pub fn index(charts: &[Packaged], base_url: &str) -> String {
    let mut out = String::from("apiVersion: v1\nentries:\n");
    for c in charts {
        let _ = write!(
            out,
            "  {}:\n  - apiVersion: v2\n    name: {}\n    version: {}\n    created: \"{}\"\n    digest: {}\n    urls:\n    - {base_url}/{}\n",
            c.name,
            c.name,
            c.version,
            super::store::now_rfc3339(),
            c.digest,
            c.file
        );
    }
    out.push_str(&format!("generated: \"{}\"\n", super::store::now_rfc3339()));
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
