//! RSS series and the robust fit that tells steady growth from a spike.
