# Convenience targets for libpcp_secure as a C library.
#
#   make build                          release build (libpcp_secure.so, .a, pcp-secure)
#   make install PREFIX=/usr/local      build and install (DESTDIR honoured)
#   make header                         regenerate include/pcp_secure.h
#   make check-c                        build and run the C tests (c-tests/)
#
# Installing lays out lib/libpcp_secure.so.X.Y.Z (+ .so.X and .so links),
# lib/libpcp_secure.a, lib/pkgconfig/libpcp_secure.pc and
# include/pcp_secure.h; scripts/install does the work.

CARGO ?= cargo
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=

.PHONY: all build install header check-c

all: build

build:
	$(CARGO) build --release

install: build
	scripts/install --no-build --prefix "$(PREFIX)" --libdir "$(LIBDIR)" \
		--includedir "$(INCLUDEDIR)" --bindir "$(BINDIR)" --destdir "$(DESTDIR)"

header:
	PCP_SECURE_BLESS=1 $(CARGO) test --test header

check-c:
	$(CARGO) test --test c_api
