//! `tapctl build`: each function as a `bootstrap` for Lambda's provided.al2023 runtime, zipped
//! reproducibly (package.rs). Cross-compiled with cargo-zigbuild against glibc 2.34 (the
//! runtime's), x86_64 by default or arm64 (Graviton) on request; the CA bundle the database
//! functions verify Aurora with is shipped next to their bootstrap.

use crate::cli::{Arch, BuildArgs, BuildProfile};
use crate::error::Error;
use crate::names::FUNCTIONS;
use crate::package::{self, Entry};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The functions that talk to PostgreSQL and so ship the RDS CA bundle.
const WITH_CA_BUNDLE: [&str; 2] = ["process", "rotate-secret"];
/// Where operators put AWS's RDS bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem).
pub const CA_BUNDLE: &str = "functions/certs/rds-global-bundle.pem";
/// provided.al2023's glibc.
const GLIBC: (u32, u32) = (2, 34);

impl Arch {
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }
    /// Lambda's name for it.
    pub fn lambda(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl BuildProfile {
    /// Cargo's name for it.
    pub fn cargo(self) -> &'static str {
        match self {
            BuildProfile::Lambda => "lambda",
            BuildProfile::Dev => "dev",
        }
    }
    /// The folder under target/<triple>/ that cargo writes the profile's binaries to.
    fn folder(self) -> &'static str {
        match self {
            BuildProfile::Lambda => "lambda",
            BuildProfile::Dev => "debug",
        }
    }
}

/// The one cargo invocation that compiles the packages. The dev profile also builds tapctl, so that
/// features unify over the same packages as the demo's first build (scripts/demo runs exactly this
/// invocation and then runs the tapctl it made): the shared dependencies are compiled once, and
/// `tapctl build --profile dev` afterwards compiles nothing again.
pub fn cargo_args(profile: BuildProfile, arch: Arch) -> Vec<String> {
    let mut args: Vec<String> =
        ["zigbuild", "--profile", profile.cargo(), "--locked", "--target"].iter().map(|a| a.to_string()).collect();
    args.push(format!("{}.{}.{}", arch.triple(), GLIBC.0, GLIBC.1));
    let packages = FUNCTIONS.iter().copied().chain((profile == BuildProfile::Dev).then_some("tapctl"));
    args.extend(packages.flat_map(|p| ["-p".to_string(), p.to_string()]));
    args
}

/// What the user will wait for, measured on 2 cores (README: Measured): a first build compiles
/// the AWS SDK crates the functions use; later ones only what changed.
fn expected_time(profile: BuildProfile, compiled_dependencies: &Path) -> &'static str {
    match (profile, compiled_dependencies.exists()) {
        (_, true) => "only what changed since the last build: seconds to a few minutes",
        (BuildProfile::Lambda, false) => {
            "a first build compiles the AWS SDK and its dependencies optimised, about 15 minutes on 2 cores"
        }
        (BuildProfile::Dev, false) => {
            "a first build compiles tapctl and the AWS SDK unoptimised, about 15 minutes on 2 cores"
        }
    }
}

/// Cargo's target and build directories for the workspace (CARGO_TARGET_DIR, build.build-dir and
/// .cargo/config included): final binaries land in the first, compiled dependencies in the second,
/// which scripts/env.sh shares between checkouts.
fn cargo_directories(source: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let out = Command::new("cargo")
        .current_dir(source)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .map_err(|e| tool_error(format!("cannot run cargo: {e}"), "install Rust (rustup.rs)"))?;
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match (metadata["target_directory"].as_str(), out.status.success()) {
        (Some(target), true) => {
            // Cargo before 1.91 has no build directory apart from the target directory.
            let build = metadata["build_directory"].as_str().unwrap_or(target);
            Ok((PathBuf::from(target), PathBuf::from(build)))
        }
        _ => Err(tool_error(
            format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            "run `cargo metadata` in the workspace to see why",
        )),
    }
}

/// A built package.
#[derive(Debug, Clone)]
pub struct Built {
    pub function: &'static str,
    pub zip: PathBuf,
    pub size: usize,
    pub code_sha256: String,
}

fn tool_error(message: String, hint: &str) -> Error {
    Error::State { message, hint: Some(hint.to_string()) }
}

/// cargo-zigbuild from PATH, or from the project's tool folder (scripts/setup-tools).
fn find_zigbuild(source: &Path) -> Option<PathBuf> {
    let local = source.join(".tools/venv/bin/cargo-zigbuild");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("cargo-zigbuild")).find(|c| c.exists()))
}

fn target_installed(triple: &str) -> bool {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output();
    match sysroot {
        Ok(o) if o.status.success() => {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&root).join("lib/rustlib").join(triple).join("lib").exists()
        }
        _ => false,
    }
}

pub fn check_source(source: &Path) -> Result<(), Error> {
    for f in FUNCTIONS {
        if !source.join("functions").join(f).join("Cargo.toml").exists() {
            return Err(Error::invalid(
                "--source",
                format!("must be the tapctl workspace holding functions/{f} ({} does not)", source.display()),
            ));
        }
    }
    Ok(())
}

/// Builds and packages every function; returns the packages.
pub fn build(args: &BuildArgs) -> Result<Vec<Built>, Error> {
    let source = std::fs::canonicalize(&args.source)
        .map_err(|_| Error::invalid("--source", format!("{} does not exist", args.source.display())))?;
    check_source(&source)?;
    let out_root = match args.profile {
        BuildProfile::Lambda => "target/lambda",
        BuildProfile::Dev => "target/lambda-dev",
    };
    let out = args.out.clone().unwrap_or_else(|| source.join(out_root).join(args.arch.lambda()));
    let zigbuild = find_zigbuild(&source).ok_or_else(|| {
        tool_error(
            "cargo-zigbuild is not installed: it cross-compiles the functions for Lambda's glibc".into(),
            "run scripts/setup-tools (pip install ziglang cargo-zigbuild)",
        )
    })?;
    let triple = args.arch.triple();
    if !target_installed(triple) {
        return Err(tool_error(
            format!(
                "the Rust standard library for {triple} is not installed, so {} cannot be built",
                args.arch.lambda()
            ),
            &format!(
                "run `rustup target add {triple}` where the rustup server is reachable, or build x86_64 (the default)"
            ),
        ));
    }
    // cargo-zigbuild runs zig through the Python that has ziglang: the tool folder's, first.
    let mut path = vec![zigbuild.parent().map(Path::to_path_buf).unwrap_or_default()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let path = std::env::join_paths(path).unwrap_or_default();
    let (target_dir, build_dir) = cargo_directories(&source)?;
    // One cargo invocation for the four: their shared dependencies are compiled once, with the
    // union of the features the functions ask for (payments-runtime's clients included). Each
    // bootstrap still links only the clients its code calls, because payments-runtime builds a
    // client only in the accessor that code calls (packaging.rs reads the bootstraps to check).
    crate::errln!(
        "building {} for {} (glibc {}.{}, {} profile): {}",
        FUNCTIONS.join(", "),
        args.arch.lambda(),
        GLIBC.0,
        GLIBC.1,
        args.profile.cargo(),
        expected_time(args.profile, &build_dir.join(triple).join(args.profile.folder()).join("deps"))
    );
    // No path-dependent flags (such as --remap-path-prefix=<this clone>): they would change the
    // compiler's arguments per clone and make the packages differ by checkout. Workspace crates are
    // compiled with relative paths, dependencies from ~/.cargo, debug info stripped.
    let status = Command::new("cargo")
        .current_dir(&source)
        .env("PATH", &path)
        .args(cargo_args(args.profile, args.arch))
        .status()
        .map_err(|e| tool_error(format!("cannot run cargo: {e}"), "install Rust (rustup.rs)"))?;
    if !status.success() {
        return Err(tool_error(
            "cargo zigbuild failed (its output is above)".into(),
            "fix the build error and run again",
        ));
    }
    let bundle = source.join(CA_BUNDLE);
    let bundle_bytes = std::fs::read(&bundle).ok();
    if bundle_bytes.is_none() {
        crate::errln!(
            "warning: no RDS CA bundle at {CA_BUNDLE}: process and rotate-secret will not reach Aurora. Download \
             https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem to that path and build again."
        );
    }
    std::fs::create_dir_all(&out).map_err(|e| tool_error(format!("cannot create {}: {e}", out.display()), ""))?;
    let mut built = Vec::new();
    for f in FUNCTIONS {
        let binary = target_dir.join(triple).join(args.profile.folder()).join(f);
        let bytes = std::fs::read(&binary)
            .map_err(|e| tool_error(format!("cannot read {}: {e}", binary.display()), "build again"))?;
        if let Some(newest) = package::newest_glibc(&bytes) {
            if newest > GLIBC {
                return Err(tool_error(
                    format!(
                        "{f} needs glibc {}.{}, newer than provided.al2023's {}.{}",
                        newest.0, newest.1, GLIBC.0, GLIBC.1
                    ),
                    "build with cargo zigbuild and the .2.34 target suffix (tapctl build does)",
                ));
            }
        }
        let mut entries = vec![Entry { name: "bootstrap".into(), bytes, executable: true }];
        if let (true, Some(b)) = (WITH_CA_BUNDLE.contains(&f), &bundle_bytes) {
            entries.push(Entry { name: "rds-global-bundle.pem".into(), bytes: b.clone(), executable: false });
        }
        let zip = package::zip(entries).map_err(|e| tool_error(format!("cannot zip {f}: {e}"), ""))?;
        let path = out.join(format!("{f}.zip"));
        std::fs::write(&path, &zip).map_err(|e| tool_error(format!("cannot write {}: {e}", path.display()), ""))?;
        built.push(Built { function: f, size: zip.len(), code_sha256: package::code_sha256(&zip), zip: path });
    }
    let manifest = json!({
        "architecture": args.arch.lambda(),
        "profile": args.profile.cargo(),
        "functions": built.iter().map(|b| (b.function.to_string(), json!({
            "zip": b.zip, "size": b.size, "code_sha256": b.code_sha256
        }))).collect::<serde_json::Map<_, _>>()
    });
    let manifest_path = out.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap_or_default())
        .map_err(|e| tool_error(format!("cannot write {}: {e}", manifest_path.display()), ""))?;
    Ok(built)
}

pub fn run(args: &BuildArgs, json_output: bool) -> Result<u8, Error> {
    let built = build(args)?;
    if json_output {
        let v: Vec<_> = built
            .iter()
            .map(|b| json!({ "function": b.function, "zip": b.zip, "size": b.size, "code_sha256": b.code_sha256 }))
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        crate::outln!("{:<14} {:>10}  {:<46} zip", "function", "bytes", "CodeSha256");
        for b in &built {
            crate::outln!("{:<14} {:>10}  {:<46} {}", b.function, b.size, b.code_sha256, b.zip.display());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_compiles_with_exactly_the_invocation_of_the_dev_profile_so_nothing_is_compiled_twice() {
        let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo")).unwrap();
        let invocation = format!("cargo {}", cargo_args(BuildProfile::Dev, Arch::X86_64).join(" "));
        assert!(demo.contains(&invocation), "scripts/demo must run `{invocation}`");
        assert!(demo.contains("build --profile dev"), "and then package with that tapctl");
    }

    #[test]
    fn the_lambda_profile_builds_the_four_functions_only_and_the_dev_profile_tapctl_with_them() {
        let lambda = cargo_args(BuildProfile::Lambda, Arch::Arm64).join(" ");
        assert_eq!(
            lambda,
            "zigbuild --profile lambda --locked --target aarch64-unknown-linux-gnu.2.34 \
             -p validate -p fraud-check -p process -p rotate-secret"
        );
        assert!(cargo_args(BuildProfile::Dev, Arch::X86_64).join(" ").ends_with("-p rotate-secret -p tapctl"));
    }
}
