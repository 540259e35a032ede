//! The one place YAML is decoded (being written).
