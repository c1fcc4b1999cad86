//! Cycle search for the list-append checker (filled in next).
