//! `scripts/install` lays out what a distribution ships — a versioned shared
//! library with its SONAME, the static library, the header, `lessor.pc`, the CLI —
//! and a C program builds against it through pkg-config alone: shared, fully
//! static (`cc -static … pkg-config --static`), and with lessor alone static
//! (`lessor-static.pc`); both static programs then run against PostgreSQL.
//! (The debug build is installed here; the release build uses the same rules.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn profile_name() -> String {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn install_gives_a_versioned_soname_a_pc_file_and_a_buildable_example() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix_dir = tempfile::tempdir().unwrap();
    let prefix = prefix_dir.path();
    let profile = profile_name();
    assert!(
        workspace.join("target").join(&profile).join("lessor").exists(),
        "target/{profile}/lessor is missing: run the suite with ./scripts/test (it builds every binary first)"
    );
    run(Command::new(workspace.join("scripts/install"))
        .arg(prefix)
        .env("LESSOR_INSTALL_NO_BUILD", "1")
        .env("LESSOR_INSTALL_PROFILE", &profile));

    let version = env!("CARGO_PKG_VERSION");
    let soname = common::soname();
    let lib = prefix.join("lib");
    let real = lib.join(format!("liblessor.so.{version}"));
    for file in [&real, &lib.join(&soname), &lib.join("liblessor.so"), &lib.join("liblessor.a")] {
        assert!(file.exists(), "{} is missing", file.display());
    }
    assert!(prefix.join("include/lessor.h").exists() && prefix.join("bin/lessor").exists());
    assert_eq!(std::fs::read_link(lib.join("liblessor.so")).unwrap(), Path::new(&soname));

    let dynamic = run(Command::new("readelf").arg("-d").arg(&real));
    assert!(dynamic.contains(&format!("Library soname: [{soname}]")), "{dynamic}");

    let pc_path = lib.join("pkgconfig");
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new("pkg-config").args(args).arg("lessor").env("PKG_CONFIG_PATH", &pc_path));
        out.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(pkg_config(&["--modversion"]), [version]);

    let example = workspace.join("ffi/examples/issue.c");
    let build = tempfile::tempdir().unwrap();
    let flags = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];
    // Shared: linked by SONAME, so the binary asks for exactly this ABI.
    let shared = build.path().join("issue-shared");
    run(Command::new("cc")
        .args(flags)
        .arg(&example)
        .arg("-o")
        .arg(&shared)
        .args(pkg_config(&["--cflags", "--libs"]))
        .arg("-lpthread"));
    let needed = run(Command::new("readelf").arg("-d").arg(&shared));
    assert!(needed.contains(&format!("Shared library: [{soname}]")), "{needed}");
    // `pkg-config --static` with `cc -static`: a fully static program, which
    // needs no shared library at all (lessor, libc) and runs.
    let fully_static = build.path().join("issue-static");
    run(Command::new("cc")
        .arg("-static")
        .args(flags)
        .arg(&example)
        .arg("-o")
        .arg(&fully_static)
        .args(pkg_config(&["--static", "--cflags", "--libs"])));
    let dynamic = run(Command::new("readelf").arg("-d").arg(&fully_static));
    assert!(
        dynamic.contains("no dynamic section"),
        "cc -static with pkg-config --static must need no shared library:\n{dynamic}"
    );
    // lessor-static: liblessor.a linked in, the system's libraries still shared.
    let lessor_static = build.path().join("issue-lessor-static");
    let pc_static =
        run(Command::new("pkg-config").args(["--cflags", "--libs", "lessor-static"]).env("PKG_CONFIG_PATH", &pc_path));
    assert!(pc_static.contains(&lib.join("liblessor.a").display().to_string()), "{pc_static}");
    run(Command::new("cc").args(flags).arg(&example).arg("-o").arg(&lessor_static).args(pc_static.split_whitespace()));
    let needed = run(Command::new("readelf").arg("-d").arg(&lessor_static));
    assert!(!needed.contains("liblessor"), "the lessor-static build must not need liblessor.so:\n{needed}");
    assert!(needed.contains("Shared library: [libc.so.6]"), "{needed}");

    // Both static programs work: the whole example against PostgreSQL, with no
    // library path set and the installed prefix taken away.
    drop(prefix_dir);
    let db = lessor_tests::pg::database("ffi_static");
    let tag = common::prefix("st", &db);
    for binary in [&fully_static, &lessor_static] {
        let data = build.path().join(format!("data-{}", binary.file_name().unwrap().to_string_lossy()));
        let stdout = run(common::database_env(&mut Command::new(binary), &db, &tag)
            .env_remove("LESSOR_TEST_HANDSHAKE")
            .env_remove("LD_LIBRARY_PATH")
            .env("LESSOR_DATA_DIR", &data)
            .env("LESSOR_THREADS", "2")
            .stdin(std::process::Stdio::null()));
        assert!(stdout.contains("\nDONE"), "{}: {stdout}", binary.display());
        assert!(db.roles_with_prefix(&format!("{tag}-")).is_empty(), "every credential was revoked");
    }
}

/// `scripts/install` into a prefix that neither pkg-config nor the dynamic
/// linker searches says exactly what to export.
#[test]
fn install_into_an_unsearched_prefix_says_what_to_export() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = tempfile::tempdir().unwrap();
    let profile = profile_name();
    let out = run(Command::new(workspace.join("scripts/install"))
        .arg(prefix.path())
        .env("LESSOR_INSTALL_NO_BUILD", "1")
        .env("LESSOR_INSTALL_PROFILE", &profile));
    let p = prefix.path().display();
    assert!(out.contains(&format!("export PKG_CONFIG_PATH={p}/lib/pkgconfig")), "{out}");
    assert!(out.contains(&format!("export LD_LIBRARY_PATH={p}/lib")), "{out}");
    assert!(out.contains(&format!("-Wl,-rpath,{p}/lib")), "{out}");
}

#[test]
fn go_package_builds_against_an_installed_lessor() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix_dir = tempfile::tempdir().unwrap();
    let profile = profile_name();
    run(Command::new(workspace.join("scripts/install"))
        .arg(prefix_dir.path())
        .env("LESSOR_INSTALL_NO_BUILD", "1")
        .env("LESSOR_INSTALL_PROFILE", &profile));
    let pc_path = prefix_dir.path().join("lib/pkgconfig");

    // The Go package builds against the installed lessor through pkg-config
    // alone (`#cgo pkg-config: lessor`), nothing from the build tree.
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let module = tempfile::tempdir().unwrap();
    for file in ["go.mod", "lessor.go"] {
        std::fs::copy(workspace.join("ffi/go").join(file), module.path().join(file)).unwrap();
    }
    run(Command::new(&go)
        .args(["build", "."])
        .current_dir(module.path())
        .env("CGO_ENABLED", "1")
        .env("PKG_CONFIG_PATH", &pc_path)
        .env_remove("CGO_CFLAGS")
        .env_remove("CGO_LDFLAGS"));
}
