//! Meta records (engine helper).
