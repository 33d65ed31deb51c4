//! The redb store: typed tables, indexes, group commit.
