//! Store tests on a temp-dir SQLite file.
