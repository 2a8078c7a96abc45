//! A function version's code, found by the CodeSha256 Lambda reports for it: among the zips of
//! the package folders `tapctl local` is given (each `tapctl build` output), the one whose
//! base64 SHA-256 is that value. So the process that answers is exactly the code the version
//! runs on Lambda, built for this machine, and two colours running different code run
//! different binaries.
//!
//! The bootstrap is unpacked into a directory this process made for itself (mode 0700, removed
//! at exit), from the very bytes whose hash matched: nothing another user of the machine can
//! write is ever executed, and no file is trusted because of its name. A zip's hash is
//! remembered by (path, size, mtime), so a version's first request does not re-read every
//! package in the folders.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The zips directly in `dir` and in its subfolders (one level: `target/lambda/*/`).
fn zips(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Ok(inner) = std::fs::read_dir(&p) {
                out.extend(inner.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "zip")));
            }
        } else if p.extension().is_some_and(|x| x == "zip") {
            out.push(p);
        }
    }
    out.sort();
    out
}

type Stamp = (u64, Option<SystemTime>);

pub struct Packages {
    dirs: Vec<PathBuf>,
    unpacked: tempfile::TempDir,
    hashes: Mutex<HashMap<PathBuf, (Stamp, String)>>,
}

impl Packages {
    pub fn new(dirs: Vec<PathBuf>) -> std::io::Result<Packages> {
        // A random name, and mode 0700 from its creation: no other user can see or plant a file.
        let mut builder = tempfile::Builder::new();
        builder.prefix("tapctl-local-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let unpacked = builder.tempdir()?;
        Ok(Packages { dirs, unpacked, hashes: Mutex::new(HashMap::new()) })
    }

    fn stamp(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.len(), m.modified().ok()))
    }

    /// The zip's bytes when its CodeSha256 is `code_sha256`.
    fn matching(&self, zip_path: &Path, code_sha256: &str) -> Option<Vec<u8>> {
        let stamp = Self::stamp(zip_path)?;
        let known = self.hashes.lock().unwrap_or_else(|p| p.into_inner()).get(zip_path).cloned();
        if matches!(&known, Some((s, h)) if *s == stamp && h != code_sha256) {
            return None;
        }
        let bytes = std::fs::read(zip_path).ok()?;
        let hash = crate::package::code_sha256(&bytes);
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).insert(zip_path.to_path_buf(), (stamp, hash.clone()));
        (hash == code_sha256).then_some(bytes)
    }

    /// The unpacked bootstrap of the package whose CodeSha256 is `code_sha256`.
    pub fn bootstrap_for(&self, code_sha256: &str) -> Result<PathBuf, String> {
        let hex: String = code_sha256.bytes().filter(u8::is_ascii_alphanumeric).take(24).map(char::from).collect();
        let path = self.unpacked.path().join(&hex).join("bootstrap");
        if path.exists() {
            return Ok(path);
        }
        for zip_path in self.dirs.iter().flat_map(|d| zips(d)) {
            let Some(bytes) = self.matching(&zip_path, code_sha256) else { continue };
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| format!("{} is not a zip: {e}", zip_path.display()))?;
            let mut bootstrap = Vec::new();
            archive
                .by_name("bootstrap")
                .map_err(|e| format!("{} has no bootstrap: {e}", zip_path.display()))?
                .read_to_end(&mut bootstrap)
                .map_err(|e| format!("unzipping {}: {e}", zip_path.display()))?;
            let dir = self.unpacked.path().join(&hex);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // Written under a temporary name and renamed: two versions with the same code,
            // started at once, never execute a half-written file.
            let partial = tempfile::NamedTempFile::new_in(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(partial.path(), &bootstrap).map_err(|e| format!("{}: {e}", partial.path().display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("{}: {e}", partial.path().display()))?;
            }
            partial.persist(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(path);
        }
        Err(format!(
            "no package in {} has CodeSha256 {code_sha256}: build that version's code with `tapctl build` and pass \
             its folder with --packages",
            self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(dir: &Path, name: &str, bootstrap: &[u8]) -> String {
        let zip = crate::package::zip(vec![crate::package::Entry {
            name: "bootstrap".into(),
            bytes: bootstrap.to_vec(),
            executable: true,
        }])
        .expect("zip");
        std::fs::write(dir.join(format!("{name}.zip")), &zip).expect("write");
        crate::package::code_sha256(&zip)
    }

    #[test]
    fn the_bootstrap_is_the_one_whose_hash_matches_unpacked_where_only_this_user_can_write() {
        let packages = tempfile::tempdir().expect("dir");
        let blue = package(packages.path(), "blue", b"#!/bin/sh\necho blue\n");
        let green = package(packages.path(), "green", b"#!/bin/sh\necho green\n");
        let p = Packages::new(vec![packages.path().to_path_buf()]).expect("packages");
        let g = p.bootstrap_for(&green).expect("green");
        assert_eq!(std::fs::read(&g).expect("read"), b"#!/bin/sh\necho green\n");
        assert_eq!(std::fs::read(p.bootstrap_for(&blue).expect("blue")).expect("read"), b"#!/bin/sh\necho blue\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.unpacked.path()).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the unpack directory is private: {mode:o}");
        let err = p.bootstrap_for("bm90LWJ1aWx0").expect_err("no such package");
        assert!(err.contains("--packages") && err.contains("bm90LWJ1aWx0"), "{err}");
    }
}
