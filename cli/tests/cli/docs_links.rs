//! The documentation's links work in a clone: every relative link in README.md, docs/*.md and
//! sectigo-acme-mock/README.md names a file of the repository and, for a `#fragment` into a
//! Markdown file, an anchor that exists there (the GitHub slug of a heading, or an explicit
//! `<a id="...">`). No Markdown file links to the `shared` folder beside the repository, which
//! a clone does not have.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The workspace root: the parent of this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The relative path of the folder beside the repository that once held the evidence; spelt
/// in two pieces so that `git grep` for it finds only real uses.
const SHARED: &str = concat!("..", "/shared");

/// A Markdown link: the line it is on (1-based) and its target as written.
#[derive(Debug)]
struct Link {
    line: usize,
    target: String,
}

/// Whether a line opens or closes a fenced code block.
fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// For each byte of `line`, whether it belongs to an inline code span (backticks included).
fn code_mask(line: &[u8]) -> Vec<bool> {
    let mut mask = vec![false; line.len()];
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'`' {
            let start = i;
            while i < line.len() && line[i] == b'`' {
                i += 1;
            }
            match open {
                None => open = Some(i - start),
                Some(run) if run == i - start => open = None,
                Some(_) => {}
            }
            mask[start..i].fill(true);
        } else {
            mask[i] = open.is_some();
            i += 1;
        }
    }
    mask
}

/// The `[text](target)` links of a Markdown text, outside fenced code blocks and code spans.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mask = code_mask(line.as_bytes());
        let mut from = 0;
        while let Some(pos) = line[from..].find("](") {
            let start = from + pos + 2;
            if mask[from + pos] {
                from = start;
                continue;
            }
            let Some(len) = line[start..].find(')') else {
                break;
            };
            from = start + len + 1;
            let mut target = line[start..start + len].trim();
            if let Some(inner) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                target = inner;
            }
            // A title ("...") may follow the destination.
            let target = target.split_whitespace().next().unwrap_or_default();
            out.push(Link {
                line: n + 1,
                target: target.to_owned(),
            });
        }
    }
    out
}

/// The text of an ATX heading (`## Title`), without its marker and closing hashes.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    let spaced = rest.is_empty() || rest.starts_with([' ', '\t']);
    if !spaced {
        return None;
    }
    let text = rest.trim();
    let unclosed = text.trim_end_matches('#');
    if unclosed.is_empty() || unclosed.ends_with([' ', '\t']) {
        return Some(unclosed.trim_end());
    }
    Some(text)
}

/// `[text](target)` becomes `text`, as in the rendered heading the slug is made from.
fn strip_links(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(mid) = after.find("](") else {
            break;
        };
        let Some(close) = after[mid + 2..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&after[..mid]);
        rest = &after[mid + 2 + close + 1..];
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading: lower case; letters, digits, `_`, `-` kept; spaces to `-`.
fn slug(heading: &str) -> String {
    strip_links(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The values of `<a id="...">` and `<a name="...">` on a line.
fn explicit_ids(line: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for prefix in ["<a id=\"", "<a name=\""] {
        let mut rest = line;
        while let Some(pos) = rest.find(prefix) {
            let after = &rest[pos + prefix.len()..];
            let Some(end) = after.find('"') else {
                break;
            };
            ids.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    ids
}

/// Every anchor a Markdown text defines; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut fenced = false;
    for line in text.lines() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        out.extend(explicit_ids(line));
        if let Some(text) = heading(line) {
            let base = slug(text);
            let count = seen.entry(base.clone()).or_insert(0);
            out.insert(if *count == 0 {
                base
            } else {
                format!("{base}-{count}")
            });
            *count += 1;
        }
    }
    out
}

/// `dir/target` relative to the repository root, `.` and `..` resolved; `None` when it is
/// absolute or climbs out of the repository.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<&OsStr> = Vec::new();
    let joined = dir.join(target);
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.into_iter().collect())
}

/// README.md, docs/*.md and sectigo-acme-mock/README.md when it exists, relative to `root`.
fn documentation(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").file_name())
        .filter(|name| Path::new(name).extension().is_some_and(|x| x == "md"))
        .map(|name| Path::new("docs").join(name))
        .collect();
    docs.sort();
    let mut files = vec![PathBuf::from("README.md")];
    files.extend(docs);
    let crate_readme = PathBuf::from("sectigo-acme-mock/README.md");
    if root.join(&crate_readme).exists() {
        files.push(crate_readme);
    }
    files
}

/// Every Markdown file under `dir` (relative to `root`), skipping hidden folders and `target`.
fn markdown_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.join(dir).display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let path = dir.join(entry.file_name());
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type");
        let skipped = name.starts_with('.') || name == "target";
        if kind.is_dir() && !skipped {
            markdown_files(root, &path, out);
        } else if kind.is_file() && name.ends_with(".md") {
            out.push(path);
        }
    }
}

#[test]
fn relative_links_resolve() {
    let root = root();
    let files = documentation(&root);
    let mut anchor_cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let dir = file.parent().unwrap_or(Path::new(""));
        for link in links(&read(&root.join(file))) {
            let target = link.target.as_str();
            if ["http:", "https:", "mailto:"]
                .into_iter()
                .any(|scheme| target.starts_with(scheme))
            {
                continue;
            }
            checked += 1;
            let here = format!("{}:{}: ({target})", file.display(), link.line);
            if target.is_empty() {
                broken.push(format!("{here}: empty link target"));
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, fragment),
                None => (target, ""),
            };
            let resolved = if path.is_empty() {
                Some(file.clone())
            } else {
                resolve(dir, path)
            };
            let Some(resolved) = resolved else {
                broken.push(format!("{here}: leads outside the repository"));
                continue;
            };
            if !root.join(&resolved).exists() {
                broken.push(format!("{here}: {} does not exist", resolved.display()));
                continue;
            }
            if fragment.is_empty() || resolved.extension().is_none_or(|x| x != "md") {
                continue;
            }
            let known = anchor_cache
                .entry(resolved.clone())
                .or_insert_with(|| anchors(&read(&root.join(&resolved))));
            if !known.contains(fragment) {
                broken.push(format!(
                    "{here}: {} has no anchor #{fragment}",
                    resolved.display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in the documentation:\n{}",
        broken.join("\n")
    );
    assert!(checked > 0, "no relative links found in {files:?}");
}

#[test]
fn no_markdown_links_to_shared() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, Path::new(""), &mut files);
    assert!(
        files.iter().any(|f| f == Path::new("README.md")),
        "README.md was not found under {}",
        root.display()
    );
    let mut outside = Vec::new();
    for file in &files {
        for link in links(&read(&root.join(file))) {
            if link.target.contains(SHARED) {
                outside.push(format!(
                    "{}:{}: ({})",
                    file.display(),
                    link.line,
                    link.target
                ));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "links to {SHARED}, which a clone does not have:\n{}",
        outside.join("\n")
    );
}

#[test]
fn the_scanner_finds_what_it_should() {
    let text = "[a](x.md) `[b](code.md)` ![c](img.png \"title\")\n\
                ```sh\n[d](fenced.md)\n```\n\
                <a id=\"s1\"></a>\n## §1 Directory\n## Title\n## Title\n### `acme-harness serve`\n";
    let found = links(text);
    let targets: Vec<&str> = found.iter().map(|l| l.target.as_str()).collect();
    assert_eq!(targets, ["x.md", "img.png"]);
    let defined = anchors(text);
    for id in [
        "s1",
        "1-directory",
        "title",
        "title-1",
        "acme-harness-serve",
    ] {
        assert!(defined.contains(id), "{id} missing from {defined:?}");
    }
    assert_eq!(
        resolve(Path::new("docs"), "../README.md"),
        Some(PathBuf::from("README.md"))
    );
    let outside = format!("../{SHARED}/x.md");
    assert_eq!(resolve(Path::new("docs"), &outside), None);
}
