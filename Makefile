# rtcam — the two commands of README.md live here: `make run` and `make test`.
# Both install what they need on Debian 12 (apt packages; the interop tests' Python venv).

SWIFT ?= swift
BUILD_PACKAGES := pkg-config libv4l-dev libasound2-dev libx264-dev libopus-dev libmbedtls-dev libsrtp2-dev libspeexdsp-dev libturbojpeg0-dev
TEST_PACKAGES := chromium firefox-esr ffmpeg sox python3-venv iproute2 util-linux systemd pulseaudio pulseaudio-utils libasound2-plugins \
                 python3-gi gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-nice gstreamer1.0-libav \
                 sslscan libnss3-tools openssl curl \
                 pipewire pipewire-bin wireplumber dbus-daemon nftables coturn
# PipeWire's ALSA plugin for the interop tests, unpacked here: Debian 12 will not install pipewire-alsa
# next to pulseaudio (installing either removes the other), and the tests need both servers.
PIPEWIRE_ALSA_ROOT := $(CURDIR)/.build-pipewire-alsa
HTTP_PORT ?= 8080
MEDIA_PORT ?= 8189
STATE_DIR ?= $(CURDIR)/.rtcam-state
RUN_ARGS ?=

.PHONY: test-arm64 test-arm64-vm run test build release deps test-deps pipewire-alsa unit-test interop-test bench deb arm64 clean fuzz

define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_PACKAGES))
	$(MAKE) pipewire-alsa

pipewire-alsa:
	@[ -f $(PIPEWIRE_ALSA_ROOT)/.unpacked ] || { \
		download=$$(mktemp -d) && chmod 755 $$download && cd $$download && apt-get download pipewire-alsa && \
		dpkg -x pipewire-alsa_*.deb $(PIPEWIRE_ALSA_ROOT) && touch $(PIPEWIRE_ALSA_ROOT)/.unpacked; \
		status=$$?; rm -rf $$download; exit $$status; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --static-swift-stdlib

# Runs the daemon: the first V4L2 camera and ALSA microphone, else a test pattern and tone.
run: release
	mkdir -p $(STATE_DIR)
	./.build/release/rtcam --http-port $(HTTP_PORT) --media-port $(MEDIA_PORT) --state-dir $(STATE_DIR) $(RUN_ARGS)

# Every test: Swift unit and in-process tests, real peers (Chromium, Firefox, aiortc) against the
# daemon, rtcam on real kernel drivers (vivid, vicodec, snd-aloop) in board/qemu-x86_64's VM, and
# the .deb installed and run by systemd in that VM; and the arm64 stage: the release aarch64 binary,
# its .deb and the optimized aarch64 test bundle cross-built, the whole Swift suite run as aarch64
# under qemu-user (two processes, both SRTP crypto paths) — all of that in the background as SCHED_IDLE
# processes from the end of the unit tests (board/arm64/suite-in-background.sh: they take only the
# CPU the interop tests and the VMs leave idle), waited for after the systemd VM — then the .deb
# installed in a plain Debian 13 arm64 root and the aarch64 daemon streaming to aiortc and Chromium
# (SRTP on the ARMv8 instructions, HTTPS on Debian 13's mbedTLS 3.6). The arm64 roots are made in the
# background while the amd64 build and unit tests run, and so is the Home Assistant venv of the
# interop tests (Tests/Interop/homeassistant-venv.sh, in /var/cache/rtcam-homeassistant).
test: test-deps
	bash board/arm64/roots-in-background.sh start
	bash Tests/Interop/homeassistant-venv.sh start
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	RTCAM_CPU_CRYPTO=none RTCAM_EXPECT_CPU_CRYPTO=none $(SWIFT) test --skip-build --filter 'SRTPCrypto|CPUCryptoPath'
	bash systemd/check-unit.sh
	FUZZ_SECONDS=2 bash Tests/Fuzz/run.sh
	bash board/arm64/roots-in-background.sh wait
	bash board/arm64/suite-in-background.sh start
	bash Tests/Interop/run.sh
	bash board/qemu-x86_64/test-board.sh
	$(MAKE) deb
	bash Tests/check-footprint.sh
	bash systemd/test-in-vm.sh --deb "$$(ls -t out/rtcam_*_amd64.deb | head -n 1)"
	bash board/arm64/suite-in-background.sh wait
	bash board/arm64/test-arm64.sh --skip-build --quick

# The whole arm64 stage in the foreground, on its own: make arm64 with the optimized test bundle, the
# .deb, the whole Swift suite as aarch64 in two processes (both SRTP crypto paths), and the daemon to
# aiortc and Chromium.
test-arm64: test-deps
	bash board/arm64/test-arm64.sh

# The qemu-aarch64 board (board/qemu-aarch64/README.md): Debian's arm64 kernel under qemu-system-aarch64
# with vivid, vicodec and snd-aloop; the aarch64 kernel-driver suites, the aarch64 daemon streaming
# vivid to aiortc (with its RSS), and the arm64 .deb under systemd. Not in `make test`: 3-6 minutes
# with caches, but a fresh machine first cross-builds the aarch64 test bundle and makes the systemd
# user land and the board (about 15 minutes more).
test-arm64-vm:
	bash board/qemu-aarch64/test-board.sh --systemd

# libFuzzer targets (Tests/Fuzz: STUN, SDP, sdpfrag, RTP/RTCP, H.264, DTLS ClientHello, SCTP, JSON,
# ICE-TCP framing, TURN client, rtcam's own HTTP request handling after NIOHTTP1),
# built with swiftc -sanitize=fuzzer,address; each runs FUZZ_SECONDS from its seed corpus, which
# grows in .build/fuzz/corpus between runs. A crash fails the run and leaves .build/fuzz/crash-*.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash Tests/Fuzz/run.sh

unit-test: deps
	$(SWIFT) test

interop-test: test-deps
	$(SWIFT) build
	bash Tests/Interop/run.sh

BENCH_PACKAGES := chromium python3-venv iproute2 util-linux python3-gi gir1.2-gst-plugins-bad-1.0 \
                  gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-nice
BENCH_ARGS ?= all

# Benchmarks (not tests): release build, then every benchmark in a network namespace holding only lo.
# Tables on stdout, JSON under out/bench/. One of them: make bench BENCH_ARGS="fanout --viewers 1 50".
bench: deps
	$(call apt_install,$(BENCH_PACKAGES))
	$(SWIFT) build -c release --static-swift-stdlib
	bash Tests/Benchmarks/run.sh $(BENCH_ARGS)

# A .deb with the static-stdlib binary, the unit, a default configuration and the man page (out/).
deb: deps
	$(call apt_install,dpkg-dev lintian)
	bash board/debian-package/build-deb.sh

# The release aarch64 rtcam and out/rtcam_<version>_arm64.deb for Debian 13 / Raspberry Pi OS trixie,
# cross-compiled with unstable's Swift 6.2.3 against a Debian 13 arm64 root (board/arm64/README.md).
# Needs root; the roots are cached in $$RTCAM_CACHE (default /var/cache/rtcam-arm64).
arm64:
	bash board/arm64/build-arm64.sh

clean:
	rm -rf .build
