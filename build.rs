//! Tells the test suite whether this machine can run the browser tests and the schemathesis
//! run, so that a machine without Chromium or schemathesis reports them as *ignored* in the
//! test summary instead of passing them silently (issue 10 item 7). Under CI (`CI` set) they
//! are never ignored: there a missing tool fails the run, because `.ci/run` installs it.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_browser)");
    println!("cargo::rustc-check-cfg=cfg(no_schemathesis)");
    for var in ["CI", "CHROMEDRIVER", "CHROME_BIN", "SCHEMATHESIS", "PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let find = |var: &str, default: &str| {
        let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
        // Rerun when the browser is installed or removed.
        println!("cargo::rerun-if-changed={}", path.display());
        path.is_file()
    };
    // Packages keep their build-time mtimes, so an install doesn't look like a change to the
    // paths above; dpkg's status file does change with every install or removal (Debian, as
    // on our CI machines; elsewhere set CHROME_BIN/CHROMEDRIVER or touch build.rs).
    println!("cargo::rerun-if-changed=/var/lib/dpkg/status");
    let driver = find("CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = find("CHROME_BIN", "/usr/bin/chromium");
    let ci = std::env::var_os("CI").is_some();
    let browser = driver && chromium;
    if !ci && !browser {
        println!("cargo::rustc-cfg=no_browser");
    }
    // schemathesis (tests/api/admin_schemathesis.rs): SCHEMATHESIS, or on PATH.
    let schemathesis = match std::env::var_os("SCHEMATHESIS") {
        Some(path) => PathBuf::from(path).is_file(),
        None => std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("schemathesis").is_file())),
    };
    if !ci && !schemathesis {
        println!("cargo::rustc-cfg=no_schemathesis");
    }
}
