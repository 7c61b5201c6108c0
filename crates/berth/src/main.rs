fn main() {
    // Placeholder replaced by the real server shortly.
}
