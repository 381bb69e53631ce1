"""greycloud's client code; its hand-written source is _async_src/."""
