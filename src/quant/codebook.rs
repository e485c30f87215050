//! The one representation every non-GGUF weight scheme shares: each element is a small integer code
//! that indexes a table of levels, times a scale, plus an offset.
//!
//! ```text
//! value(r, c) = levels[table(r, c)][code(r, c)] · scale(r, c) + offset(r, c)
//! ```
//!
//! Integer RTN (levels = the integers, scale and zero point per group), NF4 (the NF4 table, absmax
//! per block), every small float format (the format's values, a group / MX / NVFP4 scale), POST,
//! StatsQ, powers of two, SplitQuant (three clusters, one scale each), PB-LLM (binary and 8-bit
//! levels per row) and BCQ (the 2^q sums of ±α per group, as a table per group) all fit. So the
//! GPU needs one decode function for all of them, and the CPU reference and the GPU agree by
//! construction: the quantizers below only choose codes, tables and scales; the values are always
//! computed by [`Codebook::value`].

/// Which elements share one table, or one scale and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The whole tensor.
    Tensor,
    /// Each row (output feature).
    Row,
    /// Each run of `n` consecutive elements of a row; the last run of a row may be shorter.
    Group(usize),
}

impl Sharing {
    pub fn groups_per_row(self, cols: usize) -> usize {
        match self {
            Sharing::Tensor | Sharing::Row => 1,
            Sharing::Group(n) => cols.div_ceil(n.max(1)),
        }
    }

    /// How many tables (or scales) a `rows × cols` tensor has under this sharing.
    pub fn count(self, rows: usize, cols: usize) -> usize {
        match self {
            Sharing::Tensor => 1,
            Sharing::Row => rows,
            Sharing::Group(_) => rows * self.groups_per_row(cols),
        }
    }

    /// The index of the table (or scale) that element (r, c) uses.
    pub fn index(self, cols: usize, r: usize, c: usize) -> usize {
        match self {
            Sharing::Tensor => 0,
            Sharing::Row => r,
            Sharing::Group(n) => r * self.groups_per_row(cols) + c / n.max(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    pub rows: usize,
    pub cols: usize,
    /// One code per element, row-major; each is `< levels_per_table`.
    pub codes: Vec<u16>,
    /// `tables × levels_per_table` values, table after table.
    pub levels: Vec<f32>,
    pub levels_per_table: usize,
    pub table_sharing: Sharing,
    /// One per scale group (see `scale_sharing`).
    pub scales: Vec<f32>,
    /// One per scale group, or empty when every offset is zero (the value is then exactly
    /// `level · scale`).
    pub offsets: Vec<f32>,
    pub scale_sharing: Sharing,
}

impl Codebook {
    /// Bits one code needs on the GPU.
    pub fn code_bits(&self) -> u32 {
        code_bits(self.levels_per_table)
    }

    /// The dequantized value of element (r, c). Written as one multiply and one add, in that
    /// order, so that the WGSL decode computes the same thing.
    pub fn value(&self, r: usize, c: usize) -> f32 {
        let table = self.table_sharing.index(self.cols, r, c);
        let code = self.codes[r * self.cols + c] as usize;
        let level = self.levels[table * self.levels_per_table + code];
        let s = self.scale_sharing.index(self.cols, r, c);
        let scaled = level * self.scales[s];
        if self.offsets.is_empty() {
            scaled
        } else {
            scaled + self.offsets[s]
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.push(self.value(r, c));
            }
        }
        out
    }

    /// Every length and code is consistent; quantizers call it before returning so that a bug
    /// shows up as an error here rather than as an out-of-bounds read on the GPU.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.rows * self.cols;
        if self.codes.len() != n {
            return Err(format!("{} codes for {} elements", self.codes.len(), n));
        }
        let tables = self.table_sharing.count(self.rows, self.cols);
        if self.levels_per_table == 0 || self.levels.len() != tables * self.levels_per_table {
            return Err(format!(
                "{} levels, expected {tables} tables × {} levels",
                self.levels.len(),
                self.levels_per_table
            ));
        }
        if self.levels_per_table > 1 << 12 {
            return Err(format!("{} levels per table is more than the decoder's 4096", self.levels_per_table));
        }
        let scales = self.scale_sharing.count(self.rows, self.cols);
        if self.scales.len() != scales {
            return Err(format!("{} scales, expected {scales}", self.scales.len()));
        }
        if !self.offsets.is_empty() && self.offsets.len() != scales {
            return Err(format!("{} offsets, expected 0 or {scales}", self.offsets.len()));
        }
        if let Some(i) = self.codes.iter().position(|&c| c as usize >= self.levels_per_table) {
            return Err(format!(
                "code {} at element {i} is past the table of {}",
                self.codes[i], self.levels_per_table
            ));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&self.levels) || !finite(&self.scales) || !finite(&self.offsets) {
            return Err("a level, scale or offset is not finite".into());
        }
        Ok(())
    }
}

/// Bits a code needs to index a table of `levels` entries (at least 1).
pub fn code_bits(levels: usize) -> u32 {
    (usize::BITS - (levels.max(2) - 1).leading_zeros()).max(1)
}

/// The index of the entry of `sorted` (ascending) nearest to `x`; a tie between two entries goes
/// to the one with the even index (round-half-to-even on an evenly spaced grid), which is what
/// IEEE rounding does on a float grid when the codes are in value order.
pub fn nearest_sorted(sorted: &[f32], x: f32) -> usize {
    let i = sorted.partition_point(|&v| v < x);
    if i == 0 {
        return 0;
    }
    if i == sorted.len() {
        return sorted.len() - 1;
    }
    let (lo, hi) = (sorted[i - 1], sorted[i]);
    let (d_lo, d_hi) = (x - lo, hi - x);
    if d_lo < d_hi {
        i - 1
    } else if d_hi < d_lo {
        i
    } else if (i - 1) % 2 == 0 {
        i - 1
    } else {
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_level_times_scale_plus_offset_with_groups_and_a_short_last_group() {
        // 2 rows × 5 cols, scales per group of 2 (3 groups per row, the last of 1 element).
        let cb = Codebook {
            rows: 2,
            cols: 5,
            codes: vec![0, 1, 2, 3, 1, 3, 2, 1, 0, 0],
            levels: vec![-2.0, -1.0, 0.5, 1.0],
            levels_per_table: 4,
            table_sharing: Sharing::Tensor,
            scales: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            offsets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.25],
            scale_sharing: Sharing::Group(2),
        };
        cb.validate().unwrap();
        assert_eq!(cb.dequantize(), vec![-2.0, -1.0, 1.0, 2.0, -3.0, 4.0, 2.0, -5.0, -10.0, -11.75]);
        assert_eq!(cb.code_bits(), 2);
    }

    #[test]
    fn validate_rejects_a_code_past_the_table() {
        let cb = Codebook {
            rows: 1,
            cols: 2,
            codes: vec![0, 4],
            levels: vec![0.0; 4],
            levels_per_table: 4,
            table_sharing: Sharing::Tensor,
            scales: vec![1.0],
            offsets: vec![],
            scale_sharing: Sharing::Tensor,
        };
        assert!(cb.validate().unwrap_err().contains("code 4 at element 1"));
    }

    #[test]
    fn nearest_sorted_breaks_ties_to_the_even_index() {
        let grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        assert_eq!(nearest_sorted(&grid, 0.25), 0);
        assert_eq!(nearest_sorted(&grid, 0.75), 2);
        assert_eq!(nearest_sorted(&grid, 2.5), 4);
        assert_eq!(nearest_sorted(&grid, 5.0), 6);
        assert_eq!(nearest_sorted(&grid, 7.0), 7);
        assert_eq!(nearest_sorted(&grid, -1.0), 0);
        assert_eq!(nearest_sorted(&grid, 1.1), 2);
    }
}
