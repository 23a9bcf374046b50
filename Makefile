# Thin wrappers around the scripts (the scripts are the source of truth).
#   make test                 scripts/test.sh (every check, as CI runs it)
#   make staticlib            scripts/build-staticlib.sh all  -> build/<flavor>/libsensor_spool.a
#   make staticlib-thumbv7m   one flavor (host, host-std, thumbv7m, thumbv7em, riscv32imc); CS=extern works too
#   make check-undefined      scripts/check-undefined.sh over build/
.PHONY: test staticlib check-undefined clean
test:
	scripts/test.sh
staticlib:
	scripts/build-staticlib.sh all
staticlib-%:
	scripts/build-staticlib.sh $*
check-undefined:
	scripts/check-undefined.sh
clean:
	rm -rf build
