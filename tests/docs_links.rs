//! Every relative link and every `#anchor` in `README.md` and
//! `docs/**/*.md` resolves: the file (or directory) exists, and the anchor
//! is a heading of the target page, slugged as GitHub slugs it, or an
//! explicit `<a id=…>` / `<a name=…>`. Links with a scheme (`https:`,
//! `mailto:`, …) are not followed.
//!
//! The Markdown is read with pulldown-cmark, so a `#` line inside a code
//! block is no heading and a `[x](y)` inside code is no link, as on GitHub.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// A link as written: where it is, and its destination.
#[derive(Debug)]
struct Link {
    line: usize,
    dest: String,
}

/// What one Markdown page offers and asks for.
#[derive(Debug, Default)]
struct Page {
    anchors: BTreeSet<String>,
    links: Vec<Link>,
}

/// GitHub's heading slug: lowercase; every character that is not a letter,
/// a digit, `-`, `_` or a space removed; each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The `id` and `name` values of the `<a …>` tags in an HTML fragment.
fn html_anchors(html: &str, out: &mut BTreeSet<String>) {
    let lower = html.to_ascii_lowercase();
    let mut rest = 0;
    while let Some(at) = lower[rest..].find("<a ") {
        let start = rest + at;
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let tag = &html[start..end];
        let tag_lower = &lower[start..end];
        for attr in ["id=", "name="] {
            let mut from = 0;
            while let Some(p) = tag_lower[from..].find(attr) {
                let p = from + p;
                from = p + attr.len();
                // `id=` must start an attribute, not end `data-id=`.
                if p > 0 && !tag_lower.as_bytes()[p - 1].is_ascii_whitespace() {
                    continue;
                }
                let value = &tag[p + attr.len()..];
                let value = match value.chars().next() {
                    Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
                    _ => value
                        .split(|c: char| c.is_whitespace() || c == '/')
                        .next()
                        .unwrap_or(""),
                };
                if !value.is_empty() {
                    out.insert(value.to_string());
                }
            }
        }
        rest = end;
    }
}

/// Reads one page: its anchors (headings, numbered `-1`, `-2` when they
/// repeat, and explicit HTML anchors) and its links and images.
fn scan(markdown: &str) -> Page {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    let mut page = Page::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let n = seen.entry(base.clone()).or_insert(0);
                let anchor = if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                };
                *n += 1;
                page.anchors.insert(anchor);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Html(h) | Event::InlineHtml(h) => html_anchors(&h, &mut page.anchors),
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                page.links.push(Link {
                    line: line_of(range.start),
                    dest: dest_url.to_string(),
                });
            }
            _ => {}
        }
    }
    page
}

/// `true` for a destination with a scheme (`https:`, `mailto:`, `oci:`):
/// not a path in this repository.
fn has_scheme(dest: &str) -> bool {
    match dest.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        }
        None => false,
    }
}

/// `dir/target` with `.` and `..` resolved without touching the disk;
/// `None` when it climbs above the root.
fn join(dir: &Path, target: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in dir.join(target).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// A tree of files to check links in: the Markdown pages by path relative
/// to the root, and how to tell whether any other path exists and read a
/// Markdown page that is not among them.
trait Tree {
    fn exists(&self, path: &Path) -> bool;
    fn read(&self, path: &Path) -> Option<String>;
}

/// Every broken link among `pages`, as `file:line: link: why`.
fn broken_links(pages: &BTreeMap<PathBuf, String>, tree: &dyn Tree) -> Vec<String> {
    let mut scanned: BTreeMap<PathBuf, Page> =
        pages.iter().map(|(p, md)| (p.clone(), scan(md))).collect();
    let mut broken = Vec::new();
    let sources: Vec<PathBuf> = pages.keys().cloned().collect();
    for source in sources {
        let links: Vec<(usize, String)> = scanned[&source]
            .links
            .iter()
            .map(|l| (l.line, l.dest.clone()))
            .collect();
        for (line, dest) in links {
            if dest.is_empty() || has_scheme(&dest) {
                continue;
            }
            let mut fail =
                |why: String| broken.push(format!("{}:{line}: ({dest}): {why}", source.display()));
            let (path, anchor) = match dest.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (dest.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or(path);
            let target = if path.is_empty() {
                source.clone()
            } else if path.starts_with('/') {
                fail("an absolute path; link relative to this file".into());
                continue;
            } else {
                let dir = source.parent().unwrap_or(Path::new(""));
                match join(dir, path) {
                    Some(t) => t,
                    None => {
                        fail("climbs above the repository root".into());
                        continue;
                    }
                }
            };
            let known = scanned.contains_key(&target)
                || pages.keys().any(|p| p.starts_with(&target))
                || tree.exists(&target);
            if !known {
                fail(format!("{} does not exist", target.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().and_then(|e| e.to_str()) != Some("md") {
                fail(format!(
                    "an anchor into {}, which is not a Markdown page",
                    target.display()
                ));
                continue;
            }
            if !scanned.contains_key(&target) {
                match tree.read(&target) {
                    Some(md) => {
                        scanned.insert(target.clone(), scan(&md));
                    }
                    None => {
                        fail(format!("{} cannot be read", target.display()));
                        continue;
                    }
                }
            }
            if !scanned[&target].anchors.contains(anchor) {
                fail(format!(
                    "no heading or anchor '{anchor}' in {}",
                    target.display()
                ));
            }
        }
    }
    broken
}

/// The repository on disk.
struct Disk(PathBuf);

impl Tree for Disk {
    fn exists(&self, path: &Path) -> bool {
        self.0.join(path).exists()
    }
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }
}

fn markdown_under(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let entries = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.join(dir).display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let rel = dir.join(entry.file_name());
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            markdown_under(root, &rel, out);
        } else if rel.extension().and_then(|e| e.to_str()) == Some("md") {
            let text = std::fs::read_to_string(root.join(&rel))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", rel.display()));
            out.insert(rel, text);
        }
    }
}

#[test]
fn every_relative_link_and_anchor_in_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let mut pages = BTreeMap::new();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    pages.insert(PathBuf::from("README.md"), readme);
    markdown_under(&root, Path::new("docs"), &mut pages);
    assert!(
        pages.len() > 10,
        "expected README.md and the docs/ pages, found {}",
        pages.len()
    );
    let links: usize = pages.values().map(|md| scan(md).links.len()).sum();
    let broken = broken_links(&pages, &Disk(root));
    println!(
        "checked {links} links in {} Markdown files: {} broken",
        pages.len(),
        broken.len()
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// An in-memory tree: the pages, plus other files that exist.
struct Memory(BTreeSet<PathBuf>);

impl Tree for Memory {
    fn exists(&self, path: &Path) -> bool {
        self.0.iter().any(|p| p == path || p.starts_with(path))
    }
    fn read(&self, _: &Path) -> Option<String> {
        None
    }
}

fn sample(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    files
        .iter()
        .map(|(p, md)| (PathBuf::from(p), md.to_string()))
        .collect()
}

#[test]
fn headings_are_slugged_as_github_slugs_them() {
    assert_eq!(
        slug("Failing closed: `policy.error`"),
        "failing-closed-policyerror"
    );
    assert_eq!(
        slug("HTTP: the per-request exposure check beside `/healthz`"),
        "http-the-per-request-exposure-check-beside-healthz"
    );
    assert_eq!(
        slug("Argo Rollouts (web metric provider)"),
        "argo-rollouts-web-metric-provider"
    );
    assert_eq!(slug("snake_case — and spaces"), "snake_case--and-spaces");
    assert_eq!(slug("Ünïcode Wörds"), "ünïcode-wörds");
}

#[test]
fn repeated_headings_html_anchors_and_code_are_read_as_github_reads_them() {
    let page = scan(
        "# Title\n\n## Setup\n\n## Setup\n\n## Setup\n\n\
         <a id=\"custom\"></a>\n\ntext <a name='inline'>x</a>\n\n\
         ```sh\n# not a heading\n[not](a-link.md)\n```\n\n\
         `[nor](this.md)` but [this](real.md)\n",
    );
    let anchors: Vec<&str> = page.anchors.iter().map(String::as_str).collect();
    assert_eq!(
        anchors,
        ["custom", "inline", "setup", "setup-1", "setup-2", "title"]
    );
    let dests: Vec<&str> = page.links.iter().map(|l| l.dest.as_str()).collect();
    assert_eq!(dests, ["real.md"]);
    assert_eq!(page.links[0].line, 18);
}

#[test]
fn a_missing_file_or_anchor_is_reported_with_its_place() {
    let pages = sample(&[
        (
            "README.md",
            "# Top\n\n\
             [ok](docs/a.md#second-part) [ok](docs/a.md#second-part-1) \
             [ok](#top) [ok](docs/a.md) [ok](examples/run.sh) [ok](docs/)\n\
             [web](https://example.com/x.md#nope) [mail](mailto:a@b.c) [oci](oci://h/r:t)\n\
             [gone](docs/missing.md)\n\
             [bad anchor](docs/a.md#third-part)\n\
             [self](#nowhere)\n\
             [into a script](examples/run.sh#main)\n\
             [up](../outside.md)\n",
        ),
        (
            "docs/a.md",
            "# A\n\n## Second part\n\n## Second part\n\n[back](../README.md#top) [id](b.md#x)\n",
        ),
        ("docs/b.md", "<a id=\"x\"></a>\n# B\n"),
    ]);
    let tree = Memory([PathBuf::from("examples/run.sh")].into_iter().collect());
    let broken = broken_links(&pages, &tree);
    assert_eq!(
        broken,
        [
            "README.md:5: (docs/missing.md): docs/missing.md does not exist",
            "README.md:6: (docs/a.md#third-part): no heading or anchor 'third-part' in docs/a.md",
            "README.md:7: (#nowhere): no heading or anchor 'nowhere' in README.md",
            "README.md:8: (examples/run.sh#main): an anchor into examples/run.sh, which is not a Markdown page",
            "README.md:9: (../outside.md): climbs above the repository root",
        ]
    );
}

#[test]
fn a_sample_without_broken_links_passes() {
    let pages = sample(&[
        ("README.md", "# Top\n\n[docs](docs/a.md#a)\n"),
        ("docs/a.md", "# A\n\n[home](../README.md#top)\n"),
    ]);
    assert!(broken_links(&pages, &Memory(BTreeSet::new())).is_empty());
}
