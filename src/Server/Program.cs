// Temporary entry point while the transport and session layers land; replaced by the host wiring.
return 0;
