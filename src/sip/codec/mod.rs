//! The codec boundary over rsip: parsing, serialising, and the headers rsip gets wrong.
