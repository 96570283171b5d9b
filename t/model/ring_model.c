/*-------------------------------------------------------------------------
 *
 * ring_model.c
 *		A model of a ring's ping-pong under a wait policy: the adaptive
 *		strategy's own rules (src/wait_policy.c) driven by simulated time.
 *
 * A message travels round a ring of P processes (the leader and N workers)
 * again and again.  Each process, between forwarding one message and
 * receiving the next, waits as the policy says: it polls, looking at the
 * clock every LOOK_NS, and gives up and sleeps when the policy says so.  The
 * machine is described by two measured times and one assumption:
 *
 *	hop		a message's move from one polling process to the next: half the
 *			round trip of a ring of 1 worker under "adaptive"
 *	wake	a sleeping process's wake-up: what "block" costs per hop beyond a
 *			hop, i.e. block's time per round trip / P - hop
 *	load	whether each CPU also runs a busy loop (CPUs short).  A loaded
 *			spinner runs in slices of SLICE_NS, then waits a slice while the
 *			loop runs; a loaded yield gives the loop a slice; a woken sleeper
 *			runs at once (the scheduler favours wake-ups).  Unloaded, every
 *			process has a CPU of its own.  --load-for-ms stops the load after
 *			that long.
 *
 * Optional noise: each wait, with probability stall_per_wait, the process is
 * kept off its CPU for STALL_NS at a random moment (an interrupt, a daemon).
 *
 * It prints, for the second half of the trips: microseconds per round trip,
 * the share of waits that slept, and CPU microseconds spent polling per trip.
 * "--rules old" runs the rules before the policy learnt from the ring, kept
 * here for comparison: a flat budget, halved on a wasted poll and doubled on
 * a paying one, and yielding for good after one preemption.  "--rules block"
 * always sleeps.  A figure from this model is a prediction, not a
 * measurement.
 *
 *	ring_model --workers N --cpus C --hop-us H --wake-us W
 *			   [--rules new|old|block] [--budget-us B] [--load]
 *			   [--load-for-ms T]
 *			   [--stalls P] [--trips T] [--seed S]
 *
 * IDENTIFICATION
 *		t/model/ring_model.c
 *
 *-------------------------------------------------------------------------
 */
#include "c.h"

#include <getopt.h>

#include "../../src/wait_policy.h"
#include "../../src/wait_policy.c"

/* Print with the C library: the model links none of PostgreSQL's. */
#undef printf
#undef fprintf

#define LOOK_NS		1000		/* spinning: clock looks, 16 polls apart */
#define POLL_NS		60			/* one poll of a queue */
#define YIELD_NS	1000		/* an uncontended sched_yield() and poll */
#define SLICE_NS	3000000		/* a loaded CPU's time slice */
#define STALL_NS	200000		/* a noise stall */
#define STARTUP_NS	2000000		/* workers wait this long for the first
								 * message */

typedef enum
{
	RULES_NEW,
	RULES_OLD,
	RULES_BLOCK
} model_rules;

/* The rules before this policy, for comparison: see the header. */
typedef struct old_policy
{
	int64		max_budget;
	int64		budget;
	bool		yield;
} old_policy;

typedef struct model
{
	int			nprocesses;
	int			ncpus;
	int64		hop;
	int64		wake;
	bool		load;
	int64		load_until;		/* ns; the load stops then */
	double		stalls;
	model_rules rules;
	int			budget_us;
} model;

typedef struct process
{
	test_shm_mq_wait_policy policy;
	old_policy	old;
	int64		slice_end;		/* loaded: when its slice ends */
	int64		latch_set_at;	/* when the next process consumed our last
								 * message, setting our latch */
} process;

typedef struct totals
{
	int64		waits;
	int64		slept;
	int64		poll_ns;
} totals;

static uint64 rng_state;

/* The ring's header: until when its processes sleep at once (us). */
static int64 ring_sleep_until;

static double
uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Loaded, a polling process on CPU until slice_end, then off for a slice:
 * the next time at or after t that it is on its CPU.
 */
static bool
loaded_at(const model *m, int64 t)
{
	return m->load && t < m->load_until;
}

static int64
on_cpu_at(const model *m, process *p, int64 t)
{
	if (!loaded_at(m, t))
		return t;
	while (t >= p->slice_end)
	{
		int64		back = p->slice_end + SLICE_NS;

		if (t < back)
			t = back;
		p->slice_end = back + SLICE_NS;
	}
	return t;
}

/*
 * Old rules: one wait, from start until the message arrives at arrival.
 * Returns when the process makes progress.
 */
static int64
wait_old(const model *m, process *p, int64 start, int64 arrival, totals *tot)
{
	old_policy *o = &p->old;
	int64		t = start;

	for (;;)
	{
		int64		next = t + (o->yield ? YIELD_NS : LOOK_NS);

		if (loaded_at(m, t))
			next = o->yield ? t + SLICE_NS : on_cpu_at(m, p, next);
		if (next - t >= TEST_SHM_MQ_CONTENDED_US * 1000)
		{
			/* Preempted, or a contended yield: yield for good, and sleep. */
			o->yield = true;
			t = next;
			break;
		}
		if (arrival <= next)
		{
			int64		found = Max(arrival, t) + POLL_NS;

			tot->poll_ns += found - start;
			o->budget = Min(o->budget * 2, o->max_budget);
			return found;
		}
		t = next;
		if (t - start >= o->budget * 1000)
			break;
	}
	tot->poll_ns += t - start;
	tot->slept++;
	o->budget = Max(o->budget / 2, 1);
	return arrival <= t ? t + POLL_NS : arrival + m->wake;
}

/*
 * Progress at t: the policy learns, and may ask the ring to sleep at once.
 */
static int64
progress(test_shm_mq_wait_policy *pol, int64 t)
{
	int64		sleep_us = test_shm_mq_policy_progress(pol, t / 1000);

	if (sleep_us != TEST_SHM_MQ_RING_UNCHANGED)
		ring_sleep_until = sleep_us == 0 ? 0 : t / 1000 + sleep_us;
	return t;
}

/*
 * What the ring's hint says at t, as wait_adaptive.c reads it.
 */
static test_shm_mq_ring_sleep
ring_sleep_at(int64 t)
{
	if (ring_sleep_until == 0)
		return TEST_SHM_MQ_RING_POLLS;
	return t / 1000 < ring_sleep_until ? TEST_SHM_MQ_RING_SLEEPS :
		TEST_SHM_MQ_RING_SLEPT_ENOUGH;
}

/*
 * New rules: the policy itself, fed the simulated clock.
 */
static int64
wait_new(const model *m, process *p, int64 start, int64 arrival, totals *tot)
{
	test_shm_mq_wait_policy *pol = &p->policy;
	int64		t = start;
	int64		stall_at = -1;

	if (test_shm_mq_policy_would_sleep(pol))
		test_shm_mq_policy_sleeping(pol, start / 1000);
	if (test_shm_mq_policy_would_sleep(pol) ||
		!test_shm_mq_policy_begin(pol, start / 1000, ring_sleep_at(start)))
	{
		tot->slept++;
		t = Max(start, arrival) + m->wake;
		return progress(pol, t);
	}
	if (m->stalls > 0 && uniform() < m->stalls)
		stall_at = start + (int64) (uniform() * (arrival - start + 1));
	for (;;)
	{
		bool		yields = test_shm_mq_policy_yields(pol);
		int64		next = t + (yields ? YIELD_NS : LOOK_NS);
		bool		off_cpu = false;
		test_shm_mq_poll_verdict verdict;

		if (yields && loaded_at(m, t))
		{
			/* The busy loop takes a slice. */
			test_shm_mq_policy_yielded(pol, SLICE_NS / 1000);
			next = t + SLICE_NS;
			off_cpu = true;
		}
		else if (!yields)
		{
			int64		back = on_cpu_at(m, p, next);

			off_cpu = back > next;
			next = back;
		}
		if (stall_at >= 0 && next > stall_at)
		{
			next += STALL_NS;
			stall_at = -1;
			off_cpu = true;
		}

		/* The message arrived before this look: a poll found it. */
		if (arrival <= next)
		{
			int64		found = Max(arrival, t) + POLL_NS;

			if (off_cpu)
				found = Max(found, next);	/* once back on the CPU */
			tot->poll_ns += found - start;
			return progress(pol, found);
		}
		t = next;
		verdict = test_shm_mq_policy_look(pol, t / 1000,
										  p->latch_set_at > start &&
										  p->latch_set_at <= t);
		if (verdict == TEST_SHM_MQ_POLL_NEW_ROUND)
			p->latch_set_at = 0;	/* reset */
		else if (verdict == TEST_SHM_MQ_POLL_GIVE_UP)
			break;
	}
	tot->poll_ns += t - start;
	tot->slept++;
	t = (arrival <= t + POLL_NS) ? t + POLL_NS : arrival + m->wake;
	return progress(pol, t);
}

static int64
wait_for(const model *m, process *p, int64 start, int64 arrival, totals *tot)
{
	tot->waits++;
	switch (m->rules)
	{
		case RULES_BLOCK:
			tot->slept++;
			return Max(start, arrival) + m->wake;
		case RULES_OLD:
			return wait_old(m, p, start, arrival, tot);
		case RULES_NEW:
			return wait_new(m, p, start, arrival, tot);
	}
	return arrival;
}

int
main(int argc, char **argv)
{
	static struct option options[] = {
		{"workers", required_argument, NULL, 'n'},
		{"cpus", required_argument, NULL, 'c'},
		{"hop-us", required_argument, NULL, 'h'},
		{"wake-us", required_argument, NULL, 'w'},
		{"rules", required_argument, NULL, 'r'},
		{"budget-us", required_argument, NULL, 'b'},
		{"load", no_argument, NULL, 'l'},
		{"load-for-ms", required_argument, NULL, 'L'},
		{"stalls", required_argument, NULL, 's'},
		{"trips", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0}
	};
	model		m = {.nprocesses = 2, .ncpus = 16, .hop = 535, .wake = 8000,
	.rules = RULES_NEW, .budget_us = 100, .load_until = PG_INT64_MAX};
	int			trips = 20000;
	int			opt;
	process    *procs;
	int64	   *forwarded;
	int64		t;
	int64		measure_start = 0;
	totals		tot = {0};
	int			trip;
	int			i;

	rng_state = 88172645463325252ULL;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
	{
		switch (opt)
		{
			case 'n':
				m.nprocesses = atoi(optarg) + 1;
				break;
			case 'c':
				m.ncpus = atoi(optarg);
				break;
			case 'h':
				m.hop = (int64) (atof(optarg) * 1000);
				break;
			case 'w':
				m.wake = (int64) (atof(optarg) * 1000);
				break;
			case 'r':
				m.rules = strcmp(optarg, "old") == 0 ? RULES_OLD :
					strcmp(optarg, "block") == 0 ? RULES_BLOCK : RULES_NEW;
				break;
			case 'b':
				m.budget_us = atoi(optarg);
				break;
			case 'l':
				m.load = true;
				break;
			case 'L':
				m.load = true;
				m.load_until = (int64) (atof(optarg) * 1000000);
				break;
			case 's':
				m.stalls = atof(optarg);
				break;
			case 't':
				trips = atoi(optarg);
				break;
			case 'S':
				rng_state += strtoull(optarg, NULL, 10) * 0x9E3779B97F4A7C15ULL;
				break;
			default:
				fprintf(stderr, "usage: see the header of ring_model.c\n");
				return 2;
		}
	}

	procs = calloc(m.nprocesses, sizeof(process));
	forwarded = calloc(m.nprocesses, sizeof(int64));
	for (i = 0; i < m.nprocesses; i++)
	{
		test_shm_mq_policy_init(&procs[i].policy, m.budget_us,
								m.nprocesses, m.ncpus, i == 0);
		procs[i].old.max_budget = m.budget_us;
		procs[i].old.budget = m.budget_us;
		procs[i].old.yield = m.ncpus > 0 && m.nprocesses > m.ncpus;
		procs[i].slice_end = (int64) (uniform() * SLICE_NS);
		/* Workers have waited since start-up: as long as it took. */
		forwarded[i] = i == 0 ? STARTUP_NS : 0;
	}

	t = STARTUP_NS;
	for (trip = 0; trip < trips; trip++)
	{
		int64		arrival = t + m.hop;	/* the leader sent at t */

		if (trip == trips / 2)
		{
			memset(&tot, 0, sizeof(tot));
			measure_start = t;
		}
		for (i = 1; i <= m.nprocesses; i++)
		{
			int			k = i % m.nprocesses;
			int64		got = wait_for(&m, &procs[k], forwarded[k], arrival,
									   &tot);

			/* Our reading sets the sender's latch. */
			procs[i - 1].latch_set_at = got;
			forwarded[k] = got;
			arrival = got + m.hop;
		}
		t = forwarded[0];
	}

	printf("us_per_trip %.3f slept_share %.4f poll_us_per_trip %.3f\n",
		   (double) (t - measure_start) / (trips - trips / 2) / 1000.0,
		   tot.waits > 0 ? (double) tot.slept / tot.waits : 0.0,
		   (double) tot.poll_ns / (trips - trips / 2) / 1000.0);
	return 0;
}
