//! Lambda deployment packages: a `bootstrap` (and the files it ships with) in a zip that is
//! byte-for-byte the same whenever the inputs are — fixed entry order, timestamps (1980-01-01,
//! the zip epoch) and permissions — so the same source gives the same CodeSha256 and `up`
//! publishes a new version only when the code really changed.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// An entry of a package: its name inside the zip, its bytes, whether it is executable.
pub struct Entry {
    pub name: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

/// The zip of the entries, sorted by name.
pub fn zip(mut entries: Vec<Entry>) -> std::io::Result<Vec<u8>> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for e in &entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(9))
            .last_modified_time(DateTime::default())
            .unix_permissions(if e.executable { 0o755 } else { 0o644 });
        w.start_file(e.name.as_str(), options).map_err(std::io::Error::other)?;
        w.write_all(&e.bytes)?;
    }
    Ok(w.finish().map_err(std::io::Error::other)?.into_inner())
}

/// Base64 of the SHA-256 of the zip: what Lambda reports as CodeSha256.
/// The Lambda architecture a package's bootstrap is compiled for, read from its ELF header
/// (e_machine: 62 x86-64, 183 AArch64). None for a bootstrap that is not an ELF binary (a
/// script runs on either) or a zip without one.
pub fn bootstrap_machine(zip: &[u8]) -> Option<&'static str> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).ok()?;
    let mut bootstrap = archive.by_name("bootstrap").ok()?;
    let mut header = [0u8; 20];
    std::io::Read::read_exact(&mut bootstrap, &mut header).ok()?;
    if header[..4] != *b"\x7fELF" {
        return None;
    }
    // e_machine is at offset 18, in the byte order EI_DATA (offset 5) names: 1 little, 2 big.
    let machine = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        _ => u16::from_be_bytes([header[18], header[19]]),
    };
    match machine {
        62 => Some("x86_64"),
        183 => Some("arm64"),
        _ => Some("an architecture Lambda does not run"),
    }
}

pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// The newest GLIBC symbol version an ELF binary asks for ("2.34"), read from its version
/// strings: provided.al2023 has glibc 2.34, so nothing newer may be needed.
pub fn newest_glibc(binary: &[u8]) -> Option<(u32, u32)> {
    let needle = b"GLIBC_2.";
    let mut newest = None;
    let mut i = 0;
    while let Some(pos) = binary[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + pos + needle.len();
        let minor: String = binary[start..].iter().take_while(|b| b.is_ascii_digit()).map(|b| *b as char).collect();
        if let Ok(minor) = minor.parse::<u32>() {
            newest = newest.max(Some((2, minor)));
        }
        i = start;
    }
    newest
}

/// The packages `up` deploys: `manifest.json` and one zip per function, as `tapctl build` wrote
/// them. Loaded (and every zip's hash checked against the manifest) before the first AWS call,
/// so a stale or hand-edited directory is refused instead of half-deployed.
#[derive(Debug, Clone)]
pub struct Packages {
    pub dir: std::path::PathBuf,
    pub architecture: String,
    /// The cargo profile `tapctl build` used: "lambda" (what ships) or "dev" (emulator only).
    pub profile: String,
    /// CodeSha256 by function name.
    pub code_sha256: std::collections::BTreeMap<String, String>,
}

impl Packages {
    /// Reads `<dir>/manifest.json`; each of `functions` must have its zip, whose hash must match.
    pub fn load(dir: &std::path::Path, functions: &[&str]) -> Result<Packages, String> {
        let manifest_path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
        let manifest: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", manifest_path.display()))?;
        let architecture = manifest["architecture"].as_str().unwrap_or_default().to_string();
        if architecture != "x86_64" && architecture != "arm64" {
            return Err(format!(
                "{} names architecture '{architecture}'; expected x86_64 or arm64",
                manifest_path.display()
            ));
        }
        // Manifests written before profiles were recorded are the lambda profile's.
        let profile = manifest["profile"].as_str().unwrap_or("lambda").to_string();
        let mut hashes = std::collections::BTreeMap::new();
        for f in functions {
            let recorded = manifest["functions"][*f]["code_sha256"]
                .as_str()
                .ok_or_else(|| format!("{} has no package for function {f}", manifest_path.display()))?;
            let zip = dir.join(format!("{f}.zip"));
            let bytes = std::fs::read(&zip).map_err(|e| format!("cannot read {}: {e}", zip.display()))?;
            let actual = code_sha256(&bytes);
            if actual != recorded {
                return Err(format!(
                    "{} does not match manifest.json (CodeSha256 {actual}, manifest says {recorded})",
                    zip.display()
                ));
            }
            if let Some(machine) = bootstrap_machine(&bytes) {
                if machine != architecture {
                    return Err(format!(
                        "{}'s bootstrap is built for {machine}, but manifest.json says the set is {architecture}; \
                         every function of a set is deployed for one architecture — rebuild with `tapctl build --arch {architecture}`",
                        zip.display()
                    ));
                }
            }
            hashes.insert(f.to_string(), actual);
        }
        Ok(Packages { dir: dir.to_path_buf(), architecture, profile, code_sha256: hashes })
    }

    /// What `function`'s package makes Lambda run: its CodeSha256 and the set's architecture.
    pub fn code(&self, function: &str) -> Option<crate::resources::functions::Code> {
        let sha256 = self.code_sha256.get(function)?.clone();
        Some(crate::resources::functions::Code { sha256, architecture: self.architecture.clone() })
    }

    pub fn zip(&self, function: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(format!("{function}.zip")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packages_dir(tamper: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut functions = serde_json::Map::new();
        for f in ["validate", "process"] {
            let bytes =
                zip(vec![Entry { name: "bootstrap".into(), bytes: f.as_bytes().to_vec(), executable: true }]).unwrap();
            functions.insert(f.into(), serde_json::json!({ "code_sha256": code_sha256(&bytes) }));
            let written = if tamper && f == "process" { b"not the zip the manifest hashed".to_vec() } else { bytes };
            std::fs::write(dir.path().join(format!("{f}.zip")), written).unwrap();
        }
        let manifest = serde_json::json!({ "architecture": "x86_64", "functions": functions });
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        dir
    }

    #[test]
    fn packages_load_with_every_hash_checked_against_the_manifest() {
        let dir = packages_dir(false);
        let p = Packages::load(dir.path(), &["validate", "process"]).unwrap();
        assert_eq!(p.code_sha256.len(), 2);
        assert_eq!(p.zip("validate").map(|z| code_sha256(&z)).ok().as_ref(), p.code_sha256.get("validate"));
    }

    #[test]
    fn a_zip_that_is_not_what_the_manifest_hashed_is_refused() {
        let dir = packages_dir(true);
        let e = Packages::load(dir.path(), &["validate", "process"]).unwrap_err();
        assert!(e.contains("process.zip does not match manifest.json"), "{e}");
    }

    /// An ELF header as far as e_machine: little-endian, 64-bit.
    fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0];
        h.extend_from_slice(&machine.to_le_bytes());
        h.extend_from_slice(&[0; 44]);
        h
    }

    #[test]
    fn a_bootstrap_built_for_another_architecture_than_the_sets_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut functions = serde_json::Map::new();
        for (f, machine) in [("validate", 62), ("process", 183)] {
            let bytes = zip(vec![Entry { name: "bootstrap".into(), bytes: elf(machine), executable: true }]).unwrap();
            functions.insert(f.into(), serde_json::json!({ "code_sha256": code_sha256(&bytes) }));
            std::fs::write(dir.path().join(format!("{f}.zip")), bytes).unwrap();
        }
        let manifest = |arch: &str| serde_json::json!({ "architecture": arch, "functions": functions }).to_string();
        std::fs::write(dir.path().join("manifest.json"), manifest("x86_64")).unwrap();
        let e = Packages::load(dir.path(), &["validate", "process"]).unwrap_err();
        assert!(
            e.contains("process.zip's bootstrap is built for arm64, but manifest.json says the set is x86_64"),
            "{e}"
        );
        std::fs::write(dir.path().join("manifest.json"), manifest("arm64")).unwrap();
        let e = Packages::load(dir.path(), &["validate", "process"]).unwrap_err();
        assert!(e.contains("validate.zip's bootstrap is built for x86_64"), "{e}");
        let one = Packages::load(dir.path(), &["process"]).unwrap();
        assert_eq!(one.code("process").unwrap().architecture, "arm64");
        let script = zip(vec![Entry { name: "bootstrap".into(), bytes: b"#!/bin/sh\n".to_vec(), executable: true }]);
        assert_eq!(bootstrap_machine(&script.unwrap()), None, "a script runs on either");
    }

    #[test]
    fn a_function_missing_from_the_manifest_is_refused_by_name() {
        let dir = packages_dir(false);
        let e = Packages::load(dir.path(), &["validate", "process", "fraud-check"]).unwrap_err();
        assert!(e.contains("no package for function fraud-check"), "{e}");
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                name: "rds-global-bundle.pem".into(),
                bytes: b"-----BEGIN CERTIFICATE-----".to_vec(),
                executable: false,
            },
            Entry { name: "bootstrap".into(), bytes: vec![0x7f, b'E', b'L', b'F', 1, 2, 3], executable: true },
        ]
    }

    #[test]
    fn the_same_inputs_make_byte_identical_zips_whenever_they_are_made() {
        let a = zip(entries()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = zip(entries().into_iter().rev().collect()).unwrap();
        assert_eq!(a, b, "time and entry order do not change the zip");
        assert_eq!(code_sha256(&a), code_sha256(&b));
        let mut other = entries();
        other[1].bytes.push(4);
        assert_ne!(code_sha256(&zip(other).unwrap()), code_sha256(&a));
    }

    #[test]
    fn the_bootstrap_is_executable_and_first_by_name() {
        let z = zip(entries()).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(z)).unwrap();
        let boot = archive.by_index(0).unwrap();
        assert_eq!(
            (boot.name().unwrap().to_string(), boot.unix_mode().map(|m| m & 0o777)),
            ("bootstrap".to_string(), Some(0o755))
        );
        drop(boot);
        assert_eq!(archive.by_index(1).unwrap().unix_mode().map(|m| m & 0o777), Some(0o644));
    }

    #[test]
    fn the_newest_glibc_version_is_read_from_the_binary() {
        let bin = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0GLIBC_PRIVATE\0";
        assert_eq!(newest_glibc(bin), Some((2, 34)));
        assert_eq!(newest_glibc(b"\0GLIBC_2.39\0"), Some((2, 39)));
        assert_eq!(newest_glibc(b"static"), None);
    }
}
