# Developer shortcuts. The documentation targets call doc/Makefile; both fail on any warning.

.PHONY: docs docs-fast docs-clean

# Full documentation site in doc/_build/html, gallery examples executed (minutes).
docs:
	$(MAKE) -C doc html

# The same site without running the examples (what CI builds).
docs-fast:
	$(MAKE) -C doc html-noplot

docs-clean:
	$(MAKE) -C doc clean
