# Makefile for test_shm_mq_ext (PGXS)

MODULE_big = test_shm_mq_ext
OBJS = \
	src/area.o \
	src/bench.o \
	src/carrier.o \
	src/cluster_state.o \
	src/keep.o \
	src/keep_bounds.o \
	src/keep_idle.o \
	src/layout.o \
	src/messages.o \
	src/module.o \
	src/release.o \
	src/relay.o \
	src/ring.o \
	src/ring_state.o \
	src/segment.o \
	src/setup.o \
	src/stats.o \
	src/test_shm_mq.o \
	src/wait.o \
	src/wait_adaptive.o \
	src/wait_policy.o \
	src/views.o \
	src/worker.o \
	src/worker_reports.o
PGFILEDESC = "test_shm_mq_ext - shm_mq round trips through dynamic background workers"

# The version the module gives on PostgreSQL 18: the extension's own.
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" test_shm_mq_ext.control)
PG_CPPFLAGS = -DTEST_SHM_MQ_VERSION='"$(EXTVERSION)"'


EXTENSION = test_shm_mq_ext
DATA = sql/test_shm_mq_ext--1.4.sql \
	sql/test_shm_mq_ext--1.0.sql \
	sql/test_shm_mq_ext--1.0--1.1.sql \
	sql/test_shm_mq_ext--1.1--1.2.sql \
	sql/test_shm_mq_ext--1.2--1.3.sql \
	sql/test_shm_mq_ext--1.3--1.4.sql

REGRESS = extension round_trip pipelined layout strategies bad_input sizes privileges keep zero_copy cluster_state leftovers
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies, and a struct whose layout changed in
# one object but not another corrupts shared memory: rebuild every object
# when any of our headers changes.
$(OBJS): $(wildcard src/*.h)
