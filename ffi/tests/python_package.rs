//! `pip install ./ffi/python` gives a package with liblessor inside (issue 15,
//! item 9): it imports with no LESSOR_LIBRARY, from anywhere, ships `py.typed`,
//! and a library that cannot be loaded is an error that says how to fix it.
//! Offline: a venv over the system's setuptools and wheel, no build isolation,
//! the library built by `./scripts/test` (LESSOR_LIBRARY) put into the wheel.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Python that can make a venv and build a wheel without the network.
fn packaging_python() -> String {
    let mut candidates: Vec<String> = std::env::var("PYTHON").into_iter().collect();
    candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
    candidates
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import venv, ensurepip, setuptools, wheel"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "no Python 3 with venv, setuptools and wheel: run scripts/setup, or apt-get install python3-venv \
             python3-setuptools python3-wheel",
        )
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "build" || name == "__pycache__" || name.to_string_lossy().ends_with(".egg-info") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(name));
        } else {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

#[test]
fn pip_install_bundles_the_library_and_the_package_imports_without_lessor_library() {
    let python = packaging_python();
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("src");
    copy_tree(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python"), &source);
    let venv = tmp.path().join("venv");
    run(Command::new(&python).args(["-m", "venv", "--system-site-packages"]).arg(&venv));
    let lib = common::lib_dir().join("liblessor.so");
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--no-build-isolation", "--no-index", "--no-deps", "--quiet"])
        .arg(&source)
        .env("LESSOR_LIBRARY", &lib)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"));

    let probe = "import lessor, os; d = os.path.dirname(lessor.__file__); print(d); print(lessor.version()); \
                 print(os.path.isfile(os.path.join(d, 'liblessor.so')), os.path.isfile(os.path.join(d, 'py.typed')))";
    let out = run(Command::new(venv.join("bin/python"))
        .args(["-c", probe])
        .env_remove("LESSOR_LIBRARY")
        .current_dir(tmp.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with(venv.to_str().unwrap()), "imported from elsewhere: {stdout}");
    assert_eq!(lines[1], env!("CARGO_PKG_VERSION"), "{stdout}");
    assert_eq!(lines[2], "True True", "the library or py.typed is not in the package: {stdout}");

    // A library that cannot be loaded says how to get one.
    let missing = Command::new(venv.join("bin/python"))
        .args(["-c", "import lessor; lessor.version()"])
        .env("LESSOR_LIBRARY", tmp.path().join("nowhere/liblessor.so"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("pip install ./ffi/python") && stderr.contains("LESSOR_LIBRARY"), "{stderr}");
}
