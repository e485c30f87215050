//! WGSL composition. A kernel file in `shaders/` is readable WGSL on its own, with its tunables
//! as `override` constants at the top (set per pipeline, see [`GpuContext::pipeline`]). Variants
//! that change code rather than numbers are composed from pieces instead of copied:
//!
//! - `includes`: WGSL snippets prepended to the kernel, e.g. one weight-format decode function
//!   (`shaders/formats/q4_1.wgsl`) that a matmul kernel calls, so a new format is a new decode
//!   function, not a new kernel;
//! - `enable` directives (`enable f16;`) added only where the device has the feature;
//! - renamed copies of snippets ([`ShaderSource::include_copy`]): a kernel that reads several
//!   weights in one dispatch (`matmul_stacked.wgsl`) gets a copy of a format's decode code per
//!   extra weight, with every name the snippets declare suffixed, `params` replaced by that
//!   weight's fields and its buffer at another binding, generated from the one snippet.
//!
//! [`GpuContext::pipeline`]: crate::gpu::GpuContext::pipeline

/// The pieces of one shader and the key that identifies it in the pipeline cache. The WGSL text
/// is only put together by [`ShaderSource::code`], which the pipeline cache calls on a miss:
/// kernels name their source on every dispatch, and copying kilobytes of WGSL each time would
/// be work on the forward's hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaderSource {
    pub key: String,
    main: &'static str,
    /// In the order they were included.
    includes: Vec<Include>,
    enables: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Include {
    /// (name, text) as it is.
    Plain(&'static str, &'static str),
    /// Snippets that are copied together, renamed by `copy`.
    Copy(Vec<(&'static str, &'static str)>, SnippetCopy),
}

/// How [`ShaderSource::include_copy`] renames its snippets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnippetCopy {
    /// Appended to every name the snippets declare at module scope (functions, constants,
    /// variables, aliases, structs): `decode_part` → `decode_part1`, `w` → `w1`.
    pub suffix: &'static str,
    /// What the identifier `params` becomes (an expression, e.g. `params.w1`: the copy reads its
    /// layout fields from there).
    pub params: &'static str,
    /// The binding of the copy's one resource (the snippets declare it at `@binding(1)`).
    pub binding: u32,
}

impl ShaderSource {
    /// A kernel file on its own.
    pub fn new(name: &str, code: &'static str) -> Self {
        ShaderSource { key: name.to_string(), main: code, includes: Vec::new(), enables: Vec::new() }
    }

    /// Prepends a named snippet: the latest included comes first, all before the kernel's code.
    pub fn include(mut self, name: &'static str, snippet: &'static str) -> Self {
        self.key = format!("{}+{name}", self.key);
        self.includes.push(Include::Plain(name, snippet));
        self
    }

    /// Includes a renamed copy of `snippets` (see [`SnippetCopy`]). The names to rename are those all of
    /// `snippets` declare, so a reference from one to another (a format's `decode_part` calling
    /// common.wgsl's `aux_h`) follows the copy; other names (the value type `H`) stay shared.
    pub fn include_copy(mut self, snippets: &[(&'static str, &'static str)], copy: SnippetCopy) -> Self {
        for (name, _) in snippets {
            self.key = format!("{}+{name}~{}", self.key, copy.suffix);
        }
        self.includes.push(Include::Copy(snippets.to_vec(), copy));
        self
    }

    /// Adds `enable NAME;` at the very top (WGSL requires directives first).
    pub fn enable(mut self, extension: &'static str) -> Self {
        self.key = format!("{}[{extension}]", self.key);
        self.enables.push(extension);
        self
    }

    /// The composed WGSL.
    pub fn code(&self) -> String {
        let mut code = String::new();
        for extension in self.enables.iter().rev() {
            code += &format!("enable {extension};\n");
        }
        for include in self.includes.iter().rev() {
            match include {
                Include::Plain(name, snippet) => code += &format!("// ---- {name}\n{snippet}\n// ---- end {name}\n"),
                Include::Copy(snippets, copy) => {
                    let declared: Vec<&str> = snippets.iter().flat_map(|(_, s)| declarations(s)).collect();
                    for (name, snippet) in snippets {
                        let renamed = rename(snippet, &declared, copy);
                        code += &format!("// ---- {name} (copy {})\n{renamed}\n// ---- end {name}\n", copy.suffix);
                    }
                }
            }
        }
        code + self.main
    }
}

/// WGSL identifier tokens of `code` outside comments: (byte offset, identifier).
fn identifiers(code: &str) -> Vec<(usize, &str)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if code[i..].starts_with("//") {
            i += code[i..].find('\n').unwrap_or(code.len() - i);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, &code[start..i]));
        } else if c.is_ascii_digit() {
            // A number with its suffix (`1u`, `0x0Fu`, `1e-5f`) is no identifier.
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The names `code` declares at module scope: after `fn`, `const`, `override`, `alias`,
/// `struct`, or `var` (and its `<...>`), outside braces.
fn declarations(code: &str) -> Vec<&str> {
    let tokens = identifiers(code);
    let mut names = Vec::new();
    for (k, &(at, word)) in tokens.iter().enumerate() {
        if !matches!(word, "fn" | "const" | "override" | "alias" | "struct" | "var") {
            continue;
        }
        let depth = code[..at].matches('{').count() as i64 - code[..at].matches('}').count() as i64;
        if depth != 0 {
            continue;
        }
        let name = if word == "var" {
            // `var<storage, read> w`: the first identifier after the closing `>`, if any.
            let rest = &code[at + 3..];
            let skip = if rest.trim_start().starts_with('<') { rest.find('>').map_or(0, |e| e + 1) } else { 0 };
            tokens[k + 1..].iter().find(|&&(a, _)| a >= at + 3 + skip).map(|&(_, n)| n)
        } else {
            tokens.get(k + 1).map(|&(_, n)| n)
        };
        names.extend(name);
    }
    names
}

/// `code` with the identifiers in `declared` suffixed and `params` replaced (neither where it
/// follows a `.`: a member or swizzle), and its `@binding(1)` moved.
fn rename(code: &str, declared: &[&str], copy: &SnippetCopy) -> String {
    let mut out = String::with_capacity(code.len() + 256);
    let mut last = 0;
    for (at, word) in identifiers(code) {
        if code[..at].trim_end().ends_with('.') {
            continue;
        }
        let replacement = if word == "params" {
            copy.params.to_string()
        } else if declared.contains(&word) {
            format!("{word}{}", copy.suffix)
        } else {
            continue;
        };
        out += &code[last..at];
        out += &replacement;
        last = at + word.len();
    }
    out += &code[last..];
    out.replace("@binding(1)", &format!("@binding({})", copy.binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_orders_directives_first_and_keys_differ() {
        let plain = ShaderSource::new("k", "fn main() {}");
        let composed = ShaderSource::new("k", "fn main() {}").include("fmt", "fn decode() {}").enable("f16");
        let code = composed.code();
        assert!(code.starts_with("enable f16;\n"));
        assert!(code.find("fn decode").unwrap() < code.find("fn main").unwrap());
        assert_eq!(plain.code(), "fn main() {}");
        assert_ne!(plain.key, composed.key);
        assert_eq!(composed.key, "k+fmt[f16]");
    }

    #[test]
    fn copies_rename_what_their_snippets_declare() {
        let common = "@group(0) @binding(1) var<storage, read> w: array<u32>;\nconst CHUNK: u32 = 32u;\n\
                      fn aux_h(i: u32) -> H { return H(w[params.aux_offset + i]); }";
        let format = "// w[g] is a word\nfn decode_part(row: u32) -> vec4<H> {\n    let v = vec4<H>(aux_h(row));\n    \
                      return vec4<H>(v.w, H(w[row * params.n_chunks + CHUNK]), 1.0, 0x1Fu);\n}";
        let copy = SnippetCopy { suffix: "1", params: "params.w1", binding: 6 };
        let source = ShaderSource::new("k", "fn main() {}").include_copy(&[("fmt", format), ("common", common)], copy);
        assert_eq!(source.key, "k+fmt~1+common~1");
        let code = source.code();
        assert!(code.contains("@group(0) @binding(6) var<storage, read> w1: array<u32>;"), "{code}");
        assert!(code.contains("const CHUNK1: u32"), "{code}");
        assert!(code.contains("fn aux_h1(i: u32) -> H { return H(w1[params.w1.aux_offset + i]); }"), "{code}");
        // Members and swizzles (`v.w`), shared names (H, vec4) and comments are left alone.
        assert!(code.contains("// w[g] is a word\nfn decode_part1(row: u32)"), "{code}");
        assert!(code.contains("let v = vec4<H>(aux_h1(row));"), "{code}");
        assert!(code.contains("return vec4<H>(v.w, H(w1[row * params.w1.n_chunks + CHUNK1]), 1.0, 0x1Fu);"), "{code}");
    }
}
