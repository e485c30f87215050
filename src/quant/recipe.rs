//! A recipe assigns a scheme to each weight tensor of a model by name glob and layer range, e.g.
//! "keep every `ffn_down` at int8, the rest at nf4":
//!
//! ```json
//! {
//!   "default": "nf4",
//!   "rules": [
//!     { "tensors": "blk.*.ffn_down.weight", "scheme": "int8-ch" },
//!     { "tensors": "blk.*.attn_*.weight", "layers": "0-3", "scheme": "q8_0" },
//!     { "tensors": "token_embd.weight", "scheme": "keep" }
//!   ]
//! }
//! ```
//!
//! Rules are read in order and a later matching rule overrides an earlier one (like CSS), so a
//! recipe reads as "in general …, except …". `"keep"` leaves a tensor as loaded. Only matrices are
//! quantized: 1-D tensors (norm gains, biases) always stay as loaded. `*` in a glob matches any run
//! of characters (dots included), `?` one character. A rule with `layers` ("3", "0-5") matches only
//! tensors named `blk.N.…` with N in that range.

use serde::{Deserialize, Serialize};

use crate::error::QuantError;
use crate::quant::Scheme;

/// What happens to one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assignment {
    Keep,
    Quantize(Scheme),
}

impl Serialize for Assignment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Assignment::Keep => serializer.serialize_str("keep"),
            Assignment::Quantize(scheme) => scheme.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Assignment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Assignment, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.eq_ignore_ascii_case("keep") {
            Ok(Assignment::Keep)
        } else {
            name.parse().map(Assignment::Quantize).map_err(serde::de::Error::custom)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub tensors: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
    pub scheme: Assignment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default = "keep")]
    pub default: Assignment,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn keep() -> Assignment {
    Assignment::Keep
}

impl Recipe {
    /// Every matrix of the model with one scheme.
    pub fn uniform(scheme: Scheme) -> Recipe {
        Recipe { default: Assignment::Quantize(scheme), rules: Vec::new() }
    }

    /// Every tensor as loaded.
    pub fn keep_all() -> Recipe {
        Recipe { default: Assignment::Keep, rules: Vec::new() }
    }

    /// Reads a recipe; `file` names it in errors. Layer ranges are checked here, so a recipe that
    /// parses can be applied without further errors of its own.
    pub fn from_json(text: &str, file: &str) -> Result<Recipe, QuantError> {
        let bad = |message: String| QuantError::BadRecipe { file: file.into(), message };
        let recipe: Recipe = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        for (i, rule) in recipe.rules.iter().enumerate() {
            if let Some(layers) = &rule.layers {
                parse_layers(layers).map_err(|m| bad(format!("rule {} ({:?}): {m}", i + 1, rule.tensors)))?;
            }
        }
        Ok(recipe)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a recipe always serializes")
    }

    /// The assignment for tensor `name` with `n_dims` dimensions.
    pub fn assignment(&self, name: &str, n_dims: usize) -> Assignment {
        if n_dims < 2 {
            return Assignment::Keep;
        }
        let layer = layer_of(name);
        let mut chosen = self.default;
        for rule in &self.rules {
            let layer_ok = match (&rule.layers, layer) {
                (None, _) => true,
                (Some(range), Some(l)) => parse_layers(range).is_ok_and(|(lo, hi)| (lo..=hi).contains(&l)),
                (Some(_), None) => false,
            };
            if layer_ok && glob_matches(&rule.tensors, name) {
                chosen = rule.scheme;
            }
        }
        chosen
    }
}

/// The block index of a `blk.N.…` tensor name.
pub fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

fn parse_layers(range: &str) -> Result<(usize, usize), String> {
    let number =
        |s: &str| s.trim().parse::<usize>().map_err(|_| format!("layers {range:?}: {s:?} is not a layer number"));
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(range)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("layers {range:?}: the range starts after it ends"));
    }
    Ok((lo, hi))
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: the last `*` seen and where it started.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("blk.*.ffn_down.weight", "blk.12.ffn_down.weight"));
        assert!(!glob_matches("blk.*.ffn_down.weight", "blk.12.ffn_up.weight"));
        assert!(glob_matches("blk.?.attn_*", "blk.3.attn_q.weight"));
        assert!(!glob_matches("blk.?.attn_*", "blk.13.attn_q.weight"));
        assert!(glob_matches("*", "token_embd.weight"));
        assert!(glob_matches("*.weight", "a.b.weight"));
        assert!(!glob_matches("*.weight", "a.b.bias"));
        assert!(glob_matches("a*b*c", "a-b-x-c"));
        assert!(!glob_matches("a*b*c", "a-c-b"));
    }

    #[test]
    fn later_rules_override_earlier_ones_and_vectors_are_kept() {
        let recipe = Recipe::from_json(
            r#"{"default": "nf4", "rules": [
                {"tensors": "blk.*.ffn_down.weight", "scheme": "int8-ch"},
                {"tensors": "blk.*", "layers": "0-1", "scheme": "q8_0"},
                {"tensors": "token_embd.weight", "scheme": "keep"}]}"#,
            "r.json",
        )
        .unwrap();
        let name = |a: Assignment| match a {
            Assignment::Keep => "keep".to_string(),
            Assignment::Quantize(s) => s.to_string(),
        };
        assert_eq!(name(recipe.assignment("blk.5.ffn_down.weight", 2)), "int8-ch-sym");
        assert_eq!(name(recipe.assignment("blk.1.ffn_down.weight", 2)), "q8_0");
        assert_eq!(name(recipe.assignment("blk.2.attn_q.weight", 2)), "nf4-g64");
        assert_eq!(name(recipe.assignment("token_embd.weight", 2)), "keep");
        assert_eq!(name(recipe.assignment("blk.2.attn_norm.weight", 1)), "keep");
        let again = Recipe::from_json(&recipe.to_json(), "again").unwrap();
        assert_eq!(again, recipe);
    }

    #[test]
    fn bad_recipes_name_the_problem() {
        for (text, expected) in [
            (r#"{"default": "int9"}"#, "int takes 2 to 8 bits"),
            (r#"{"rules": [{"tensors": "x", "scheme": "nf4", "layers": "5-2"}]}"#, "rule 1 (\"x\"): layers \"5-2\""),
            (r#"{"rules": [{"tensor": "x", "scheme": "nf4"}]}"#, "unknown field `tensor`"),
            (r#"{"rules": [{"tensors": "x", "scheme": "nf4", "layers": "a"}]}"#, "\"a\" is not a layer number"),
            ("[1,", "r.json: bad recipe"),
        ] {
            let err = Recipe::from_json(text, "r.json").unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
