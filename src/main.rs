//! The `calisnap` command line: parse arguments, call the library, print errors, exit 0/1/2.

fn main() {
    eprintln!("calisnap: being written");
    std::process::exit(2);
}
