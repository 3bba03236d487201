//! Tells the test suite whether this machine can run the browser tests, so that a machine
//! without Chromium reports them as *ignored* in the test summary instead of passing them
//! silently (issue 10 item 7). Under CI (`CI` set) they are never ignored: there a missing
//! browser fails the run, because `.ci/run` installs it.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_browser)");
    for var in ["CI", "CHROMEDRIVER", "CHROME_BIN"] {
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
    if !(driver && chromium) && std::env::var_os("CI").is_none() {
        println!("cargo::rustc-cfg=no_browser");
    }
}
