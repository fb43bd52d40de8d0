//! The WIT contract this host speaks (docs/wit-versions.md): the package
//! names, which versions are served, and reading a component's version
//! from its bytes. Kept apart from the sandbox so that bundles (which
//! record and check a component's version) and policies (which bind to
//! it) both depend on it and not on each other.

/// The newest WIT package this host speaks: what `stagegate build` records
/// for a component it cannot read a version from, and the SDK's version.
pub const WIT_PACKAGE: &str = "stagegate:policy@1.1.0";

/// Every WIT package this host serves, oldest first.
pub const SUPPORTED: [&str; 2] = ["stagegate:policy@1.0.0", "stagegate:policy@1.1.0"];

/// The package name a component's exports are looked up under.
pub(crate) const PACKAGE: &str = "stagegate:policy";

/// The interface every policy exports, without its version.
pub(crate) const EVALUATE: &str = "stagegate:policy/evaluate@";

/// The supported packages as one phrase, for messages.
pub fn supported_list() -> String {
    SUPPORTED.join(" and ")
}

/// The WIT versions a component may be built against, each with its own
/// bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    V1_0,
    V1_1,
}

impl WitVersion {
    /// The package this version names, e.g. `stagegate:policy@1.1.0`.
    pub fn package(self) -> &'static str {
        match self {
            WitVersion::V1_0 => SUPPORTED[0],
            WitVersion::V1_1 => SUPPORTED[1],
        }
    }

    /// Which bindings serve a component that was built against `version`
    /// of the package: the same major and minor (a patch release changes
    /// no type). A newer minor may rely on fields this host cannot give, and
    /// another major is another contract: both are refused, naming what
    /// was found and what this host runs.
    pub fn for_version(version: &semver::Version) -> Result<Self, WitVersionError> {
        match (version.major, version.minor) {
            (1, 0) => Ok(WitVersion::V1_0),
            (1, 1) => Ok(WitVersion::V1_1),
            (1, _) => Err(WitVersionError::NewerMinor(version.clone())),
            _ => Err(WitVersionError::OtherMajor(version.clone())),
        }
    }
}

/// A component built against a version of the package this host does not
/// serve, naming what was found and what this host runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitVersionError {
    #[error(
        "it was built for {PACKAGE}@{0}, a newer minor version than this host runs ({list}); upgrade the host, or rebuild the policy against 1.1.0",
        list = supported_list()
    )]
    NewerMinor(semver::Version),
    #[error(
        "it was built for {PACKAGE}@{0}, another major version than this host runs ({list})",
        list = supported_list()
    )]
    OtherMajor(semver::Version),
    /// The component exports the interface under a version that is not
    /// semver.
    #[error("it exports {name}, whose version does not parse: {error}")]
    Unparsable { name: String, error: String },
    /// The component exports no version of the interface at all.
    #[error(
        "it exports no {PACKAGE}/evaluate interface (exports: {exports}); this host runs {list}",
        list = supported_list()
    )]
    NoEvaluate { exports: String },
}

/// The WIT package a component's bytes say it was built against, read from
/// the name of the `stagegate:policy/evaluate@X.Y.Z` interface it exports
/// at top level, without compiling it: what `stagegate build` records in
/// the manifest. `None` for bytes that are not a component exporting that
/// interface (loading such a bundle is refused with the reason).
pub fn package_of(wasm: &[u8]) -> Option<String> {
    use wasmparser::{ComponentExternalKind, Parser, Payload};
    // Nested modules and components are parsed inline; only exports at
    // depth 0 are the component's own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.checked_sub(1)?,
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.ok()?;
                    if export.kind == ComponentExternalKind::Instance
                        && let Some(version) = export.name.name.strip_prefix(EVALUATE)
                    {
                        return Some(format!("{PACKAGE}@{version}"));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn each_supported_minor_gets_its_own_bindings_and_patches_share_them() {
        assert_eq!(WitVersion::for_version(&v("1.0.0")), Ok(WitVersion::V1_0));
        assert_eq!(WitVersion::for_version(&v("1.0.3")), Ok(WitVersion::V1_0));
        assert_eq!(WitVersion::for_version(&v("1.1.0")), Ok(WitVersion::V1_1));
        assert_eq!(WitVersion::V1_1.package(), WIT_PACKAGE);
    }

    #[test]
    fn a_newer_minor_or_another_major_is_refused_naming_found_and_supported() {
        let e = WitVersion::for_version(&v("1.2.0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("built for stagegate:policy@1.2.0"), "{e}");
        assert!(e.contains("newer minor version"), "{e}");
        assert!(
            e.contains("stagegate:policy@1.0.0 and stagegate:policy@1.1.0"),
            "{e}"
        );
        let e = WitVersion::for_version(&v("2.0.0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("built for stagegate:policy@2.0.0"), "{e}");
        assert!(e.contains("another major version"), "{e}");
    }
}
