
# 140_wait_model.pl
#
# The adaptive wait strategy's rules (src/wait_policy.c), run in a model of a
# ring (t/model/ring_model.c) on machines that this suite cannot run on: 16
# CPUs with a core per process, the same with a preemption now and then, and
# CPUs short, every one of them running a busy loop.  The model's machine is
# described by the measurements named below; its figures are predictions, not
# measurements (bench/scale measures).

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Utils;
use Test::More;

my $includedir = `pg_config --includedir-server`;
chomp $includedir;
my $cc = $ENV{CC} // 'cc';
my $model = "${PostgreSQL::Test::Utils::tmp_check}/ring_model";
my ($out, $err);
ok( IPC::Run::run(
		[
			$cc, '-O2', '-Wall', "-I$includedir", '-o', $model,
			't/model/ring_model.c'
		],
		'>', \$out, '2>', \$err),
	'the model builds against the policy')
  or diag $err;

# One run of the model: its three figures.
sub model
{
	my @args = @_;
	my $line = `$model @args`;
	die "ring_model @args failed" if $? != 0;
	my %f = $line =~ /(\w+) ([\d.]+)/g;
	return \%f;
}

# A 16-CPU host, as measured there with this module: a ring of 1 worker
# takes 1.07 us per round trip polling (so a hop is 0.535 us), and 141 us
# under "block" for 15 workers (so a wake-up is 141 / 16 - 0.535 = 8.3 us).
my @host16 = ('--cpus', 16, '--hop-us', 0.535, '--wake-us', 8.3);

# Every ring from 1 to 15 workers has its processes polling, and so is at
# least 5 times faster than "block", and within twice the hops of a ring
# where everyone polls.
for my $n (1 .. 15)
{
	my $new = model('--workers', $n, @host16);
	my $block = model('--workers', $n, @host16, '--rules', 'block');
	cmp_ok($new->{slept_share}, '<', 0.01,
		"16 CPUs, $n workers: the ring converges to polling");
	cmp_ok($block->{us_per_trip} / $new->{us_per_trip},
		'>=', 5, "16 CPUs, $n workers: at least 5x faster than block");
	cmp_ok($new->{us_per_trip}, '<=', 2 * ($n + 1) * 0.535,
		"16 CPUs, $n workers: within twice ($n + 1) hops");
}

# The rules before, on the same machine, settle with everyone asleep once
# the ring passes a few workers, as measured there: the model shows the
# failure it was built to explain.
my $old = model('--workers', 15, @host16, '--rules', 'old');
my $block15 = model('--workers', 15, @host16, '--rules', 'block');
cmp_ok($old->{slept_share}, '>', 0.5,
	'16 CPUs, 15 workers, the old rules: the ring settles asleep');
cmp_ok($old->{us_per_trip}, '>', 0.9 * $block15->{us_per_trip},
	'16 CPUs, 15 workers, the old rules: no faster than block');

# A stall of 200 us in 1% of waits (an interrupt, a daemon) does not put the
# ring to sleep for good.
for my $n (4, 15)
{
	my $new = model('--workers', $n, @host16, '--stalls', 0.01);
	my $block = model('--workers', $n, @host16, '--rules', 'block');
	cmp_ok($new->{slept_share}, '<', 0.02,
		"16 CPUs, $n workers, stalls: the ring keeps polling");
	cmp_ok($new->{us_per_trip}, '<', $block->{us_per_trip} / 2,
		"16 CPUs, $n workers, stalls: still faster than block");
}

# CPUs short: every CPU runs a busy loop too.  The ring converges to
# sleeping, and costs no more than 10% over block.  The 2-CPU machine's
# figures: a hop of 0.35 us, a wake-up of 25 us.
my @host2 = ('--cpus', 2, '--hop-us', 0.35, '--wake-us', 25);
for my $case ([ \@host16, 1 ], [ \@host16, 4 ], [ \@host16, 15 ],
	[ \@host2, 1 ], [ \@host2, 4 ])
{
	my ($host, $n) = @$case;
	my $cpus = $host->[1];
	my $new = model('--workers', $n, @$host, '--load', '--trips', 20000);
	my $block =
	  model('--workers', $n, @$host, '--load', '--trips', 20000, '--rules',
		'block');
	cmp_ok($new->{slept_share}, '>', 0.99,
		"$cpus busy CPUs, $n workers: the ring converges to sleeping");
	cmp_ok($new->{us_per_trip}, '<=', 1.1 * $block->{us_per_trip},
		"$cpus busy CPUs, $n workers: within 10% of block");
}

# The load goes away after 100 ms: the leader, scouting, finds the CPUs free
# and the ring polls again.
for my $n (1, 15)
{
	my $new = model('--workers', $n, @host16, '--load-for-ms', 100,
		'--trips', 40000);
	cmp_ok($new->{slept_share}, '<', 0.01,
		"16 CPUs, $n workers, load gone: the ring polls again");
}

done_testing();
