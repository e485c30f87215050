//! (being written)
pub struct Recipe;
