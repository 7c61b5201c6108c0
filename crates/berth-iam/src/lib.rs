//! IAM policy language and evaluation (being written).
