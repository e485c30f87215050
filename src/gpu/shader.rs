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

/// Composed WGSL and the key that identifies it in the pipeline cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaderSource {
    pub key: String,
    pub code: String,
}

impl ShaderSource {
    /// A kernel file on its own.
    pub fn new(name: &str, code: &str) -> Self {
        ShaderSource { key: name.to_string(), code: code.to_string() }
    }

    /// Prepends a named snippet (kept in order of calls, before the kernel's own code).
    pub fn include(mut self, name: &str, snippet: &str) -> Self {
        self.key = format!("{}+{name}", self.key);
        self.code = format!("// ---- {name}\n{snippet}\n// ---- end {name}\n{}", self.code);
        self
    }

    /// Adds `enable NAME;` at the very top (WGSL requires directives first).
    pub fn enable(mut self, extension: &str) -> Self {
        self.key = format!("{}[{extension}]", self.key);
        self.code = format!("enable {extension};\n{}", self.code);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_orders_directives_first_and_keys_differ() {
        let plain = ShaderSource::new("k", "fn main() {}");
        let composed = ShaderSource::new("k", "fn main() {}").include("fmt", "fn decode() {}").enable("f16");
        assert!(composed.code.starts_with("enable f16;\n"));
        assert!(composed.code.find("fn decode").unwrap() < composed.code.find("fn main").unwrap());
        assert_ne!(plain.key, composed.key);
        assert_eq!(composed.key, "k+fmt[f16]");
    }
}
