//! Key encoding (engine helper).
