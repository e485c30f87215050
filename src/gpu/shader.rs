//! WGSL composition. A kernel file in `shaders/` is readable WGSL on its own, with its tunables
//! as `override` constants at the top (set per pipeline, see [`GpuContext::pipeline`]). Variants
//! that change code rather than numbers are composed from pieces instead of copied:
//!
//! - `includes`: WGSL snippets prepended to the kernel, e.g. one weight-format decode function
//!   (`shaders/formats/q4_1.wgsl`) that a matmul kernel calls, so a new format is a new decode
//!   function, not a new kernel;
//! - `enable` directives (`enable f16;`) added only where the device has the feature.
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
    /// (name, text), in the order they were included.
    includes: Vec<(&'static str, &'static str)>,
    enables: Vec<&'static str>,
}

impl ShaderSource {
    /// A kernel file on its own.
    pub fn new(name: &str, code: &'static str) -> Self {
        ShaderSource { key: name.to_string(), main: code, includes: Vec::new(), enables: Vec::new() }
    }

    /// Prepends a named snippet: the latest included comes first, all before the kernel's code.
    pub fn include(mut self, name: &'static str, snippet: &'static str) -> Self {
        self.key = format!("{}+{name}", self.key);
        self.includes.push((name, snippet));
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
        for (name, snippet) in self.includes.iter().rev() {
            code += &format!("// ---- {name}\n{snippet}\n// ---- end {name}\n");
        }
        code + self.main
    }
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
}
