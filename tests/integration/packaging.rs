//! `tapctl build`: the real cross-build (cargo-zigbuild, glibc 2.34) and the packages it writes.
//! scripts/test runs `tapctl build` before the tests, so here cargo finds the binaries fresh and
//! the test sees the packaging of an up-to-date build.

use super::harness::aws_env;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

fn tapctl_build(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapctl"));
    cmd.arg("build").args(args);
    aws_env(&mut cmd);
    // No AWS is needed: an unreachable endpoint proves it.
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let out = cmd.output().expect("tapctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// A second checkout of this workspace at another path (of another length): the files git
/// tracks or would track, as they are now, and the tools scripts/setup-tools installed.
fn checkout_elsewhere() -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::Builder::new().prefix("tapctl-second-checkout-").tempdir().unwrap();
    let listed = Command::new("git")
        .current_dir(source)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .expect("git ls-files");
    assert!(listed.status.success());
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let relative = Path::new(std::str::from_utf8(file).unwrap());
        let (from, to) = (source.join(relative), copy.path().join(relative));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    std::os::unix::fs::symlink(source.join(".tools"), copy.path().join(".tools")).unwrap();
    copy
}

/// Two checkouts at different paths build byte-identical packages: the CodeSha256 Lambda sees
/// depends on the source only, so a rebuild elsewhere never shows up as new code to deploy.
#[test]
fn build_packages_each_function_as_a_bootstrap_for_glibc_2_34_in_byte_identical_zips() {
    let here = env!("CARGO_MANIFEST_DIR");
    let elsewhere = checkout_elsewhere();
    assert_ne!(Path::new(here), elsewhere.path());
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for (source, out) in [(Path::new(here), &first), (elsewhere.path(), &second)] {
        let (code, _, stderr) =
            tapctl_build(&["--source", source.to_str().unwrap(), "--out", out.path().to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (a, b) = (manifest(first.path()), manifest(second.path()));
    assert_eq!(a["architecture"], "x86_64");
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let zip_a = std::fs::read(first.path().join(format!("{f}.zip"))).unwrap();
        let zip_b = std::fs::read(second.path().join(format!("{f}.zip"))).unwrap();
        assert_eq!(zip_a, zip_b, "{f}: two checkouts of one source build different packages");
        assert_eq!(a["functions"][f]["code_sha256"], b["functions"][f]["code_sha256"]);

        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_a)).unwrap();
        let mut boot = archive.by_name("bootstrap").expect("bootstrap at the zip's root");
        assert_eq!(boot.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut bytes = Vec::new();
        boot.read_to_end(&mut bytes).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF");
        // The shipped binary links exactly the clients its code uses (the joint build turns on
        // every feature of payments-runtime; the clients it does not call must not be linked).
        let uses = super::dependencies::USES.iter().find(|(name, _)| *name == f).expect("a known function").1;
        assert_eq!(
            super::dependencies::linked_clients(&bytes),
            uses.iter().copied().collect(),
            "{f}: the SDK clients linked into its bootstrap"
        );
        // What the binary needs from glibc, as the dynamic linker sees it (objdump -T).
        let bin = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bin.path(), &bytes).unwrap();
        let dump = Command::new("objdump").arg("-T").arg(bin.path()).output().expect("objdump");
        let text = String::from_utf8_lossy(&dump.stdout);
        let newest = text
            .split("GLIBC_2.")
            .skip(1)
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u32>().ok())
            .max()
            .expect("a dynamically linked bootstrap");
        assert!(newest <= 34, "{f} needs GLIBC_2.{newest}; provided.al2023 has 2.34");
    }
}

#[test]
fn build_refuses_a_folder_that_is_not_the_workspace_and_explains_a_missing_arm64_target() {
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = tapctl_build(&["--source", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--source") && stderr.contains("functions/validate"), "{stderr}");

    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let root = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&root).join("lib/rustlib/aarch64-unknown-linux-gnu/lib").exists() {
        return; // this machine can build arm64: nothing to explain
    }
    let out = tempfile::tempdir().unwrap();
    let (code, _, stderr) = tapctl_build(&[
        "--arch",
        "arm64",
        "--source",
        env!("CARGO_MANIFEST_DIR"),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("rustup target add aarch64-unknown-linux-gnu"), "{stderr}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing was written");
}

#[test]
fn up_with_build_deploys_the_packages_it_just_built() {
    let acct = super::harness::Account::new();
    let out = tempfile::tempdir().unwrap();
    let packages = out.path().join("x86_64");
    let run = acct.tapctl(&["up", "--suffix", "qa", "--build"]).env("TAPCTL_PACKAGES", &packages).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let built = manifest(&packages);
    for f in ["validate", "fraud-check", "process", "rotate-secret"] {
        let deployed = acct.block_on(async {
            acct.lambda.get_function_configuration().function_name(format!("payment-{f}-qa")).send().await.unwrap()
        });
        assert_eq!(deployed.code_sha256(), built["functions"][f]["code_sha256"].as_str(), "{f}: what was just built");
    }
}

#[test]
fn up_without_packages_is_refused_before_any_aws_call_naming_the_option_and_the_fix() {
    let acct = super::harness::Account::new();
    let empty = tempfile::tempdir().unwrap();
    let run = acct.tapctl(&["up", "--suffix", "qa"]).env("TAPCTL_PACKAGES", empty.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--packages") && stderr.contains("tapctl build"), "{stderr}");
    assert_eq!(acct.proxy.calls(), vec![], "refused before the first AWS call");
}

/// Dev-profile packages (`tapctl build --profile dev`, the demo's) are for the emulator: `up`
/// deploys them there, and refuses them before any AWS call when no endpoint names an emulator.
#[test]
fn dev_profile_packages_deploy_to_the_emulator_and_are_refused_for_a_real_account() {
    let acct = super::harness::Account::with_stub_packages();
    let dev = super::harness::stub_packages(&tapctl::names::FUNCTIONS, "dev");
    let manifest_path = dev.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["profile"] = "dev".into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut real = Command::new(env!("CARGO_BIN_EXE_tapctl"));
    aws_env(&mut real);
    let refused = real
        .args(["up", "--suffix", "qa", "--no-progress", "--state-dir"])
        .arg(state.path())
        .env("TAPCTL_PACKAGES", dev.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--packages") && stderr.contains("dev-profile") && stderr.contains("`tapctl build`"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0, "nothing recorded");

    let deployed = acct.tapctl(&["up", "--suffix", "qa"]).env("TAPCTL_PACKAGES", dev.path()).output().unwrap();
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let sha =
        acct.block_on(async { acct.lambda.get_function().function_name("payment-validate-qa").send().await.unwrap() });
    assert_eq!(
        sha.configuration().and_then(|c| c.code_sha256()),
        manifest["functions"]["validate"]["code_sha256"].as_str(),
        "the emulator holds the dev package"
    );
}
