//! A function version's code, found by the CodeSha256 Lambda reports for it: among the zips of
//! the package folders `tapctl local` is given (each `tapctl build` output), the one whose
//! base64 SHA-256 is that value; its `bootstrap` unzipped once into a folder named by the hash.
//! So the process that answers is exactly the code the version runs on Lambda, built for this
//! machine, and two colours running different code run different binaries.

use std::io::Read;
use std::path::{Path, PathBuf};

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

/// The unzipped bootstrap of the package whose CodeSha256 is `code_sha256`.
pub fn bootstrap_for(dirs: &[PathBuf], code_sha256: &str) -> Result<PathBuf, String> {
    for zip_path in dirs.iter().flat_map(|d| zips(d)) {
        let Ok(bytes) = std::fs::read(&zip_path) else { continue };
        if crate::package::code_sha256(&bytes) != code_sha256 {
            continue;
        }
        let hex: String = code_sha256.bytes().filter(u8::is_ascii_alphanumeric).take(24).map(char::from).collect();
        let dir = std::env::temp_dir().join("tapctl-local").join(hex);
        let path = dir.join("bootstrap");
        if !path.exists() {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| format!("{} is not a zip: {e}", zip_path.display()))?;
            let mut bootstrap = Vec::new();
            archive
                .by_name("bootstrap")
                .map_err(|e| format!("{} has no bootstrap: {e}", zip_path.display()))?
                .read_to_end(&mut bootstrap)
                .map_err(|e| format!("unzipping {}: {e}", zip_path.display()))?;
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // Written under a temporary name and renamed: a concurrent `tapctl local` never
            // executes a half-written file.
            let partial = dir.join(format!(".bootstrap.{}", std::process::id()));
            std::fs::write(&partial, &bootstrap).map_err(|e| format!("{}: {e}", partial.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("{}: {e}", partial.display()))?;
            }
            std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(path);
    }
    Err(format!(
        "no package in {} has CodeSha256 {code_sha256}: build that version's code with `tapctl build` and pass its \
         folder with --packages",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}
