//! Step 4: libfoobar.so (not implemented yet).
