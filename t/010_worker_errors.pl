
# 010_worker_errors.pl
#
# Proves that a worker's error in the middle of a long call reaches the
# caller within a second, as that worker's own error, with a context line
# naming the worker and its PID, whatever the worker's place in the ring and
# whatever the call: test_shm_mq() (one message in flight) or
# test_shm_mq_pipelined() (many), under each wait strategy:
#
#  - SIGTERM to the first, a middle and the last worker:
#      ERROR:  57P01: terminating background worker "test_shm_mq_ext" due to administrator command
#      CONTEXT:  test_shm_mq_ext worker K of N, PID <the worker's PID>
#  - pg_cancel_backend() of a middle worker:
#      ERROR:  57014: canceling statement due to user request
#      CONTEXT:  test_shm_mq_ext worker K of N, PID <the worker's PID>
#
# The caller's session goes on, and no worker process and no segment of ours
# is left afterwards.  It also checks that each worker shows its name in the
# OS process list, as it does in pg_stat_activity; that a call that returns
# has left no worker behind, not even for a moment; and that the checks for
# leftovers do see a running call's workers and segment.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# Enough workers to have a first, a middle and a last one.
my $nworkers = 5;
my $middle   = 3;

# Calls that would run for hours if nothing stopped them.
my %calls = long_calls($nworkers);

my $node            = new_node('worker_errors');
my $segments_before = dsm_segments($node);
my $control         = TestShmMq::Session->new($node);

# The checks for leftovers can see what they look for.
check_leak_detection($node, $segments_before);

# A call that returns has waited for its workers to exit: none is left, not
# even for a moment.
foreach my $function ('test_shm_mq', 'test_shm_mq_pipelined')
{
	foreach my $n (1, $nworkers)
	{
		my $result = $control->query(
			"SELECT $function(1024, repeat('x', 2000), 100, $n)");
		is($result->{stderr}, '', "$function with $n workers succeeds");
		is_deeply([ worker_processes($node, $control->pid) ],
			[], "$function with $n workers: no worker left when it returns");
	}
}

# The faults: how to inject each into a worker, and what the caller must see.
my @faults = (
	(   map {
			my $victim = $_;
			+{  name     => "SIGTERM to worker $victim of $nworkers",
				victim   => $victim,
				inject   => sub { kill 'TERM', $_[0] },
				sqlstate => '57P01',
				message  =>
				  'terminating background worker "test_shm_mq_ext" due to administrator command',
			}
		} (1, $middle, $nworkers)),
	{   name   => "pg_cancel_backend of worker $middle of $nworkers",
		victim => $middle,
		inject => sub { $control->query("SELECT pg_cancel_backend($_[0])") },
		sqlstate => '57014',
		message  => 'canceling statement due to user request', },);

foreach my $strategy (wait_strategies($node))
{
	foreach my $function ('test_shm_mq', 'test_shm_mq_pipelined')
	{
		foreach my $fault (@faults)
		{
			my $label   = "$function, $strategy wait, $fault->{name}";
			my $session = TestShmMq::Session->new($node);
			my $leader  = $session->pid;

			$session->set_wait_strategy($strategy);
			$session->send($calls{$function});
			my $workers    = wait_for_ring($node, $leader, $nworkers);
			my $victim_pid = $workers->{ $fault->{victim} };

			# pg_stat_activity gave the PIDs by application name; ps must
			# show the same title.
			if ($fault == $faults[0])
			{
				my %titles = map { /^(\d+) (.*)$/ ? ($1 => $2) : () }
				  worker_processes($node);
				foreach my $number (1 .. $nworkers)
				{
					like(
						$titles{ $workers->{$number} } // '',
						qr/test_shm_mq_ext worker $number of $nworkers for PID $leader\s*$/,
						"$label: ps names worker $number of $nworkers");
				}
			}

			my $fault_at = now();
			$fault->{inject}->($victim_pid);
			my $result = $session->wait_result;
			my $error  = parse_error($result->{stderr}) // {};

			ok($result->{finished}, "$label: the call ended");
			is($error->{severity}, 'ERROR',
				"$label: the caller gets an ERROR");
			is($error->{sqlstate}, $fault->{sqlstate},
				"$label: SQLSTATE $fault->{sqlstate}");
			is($error->{message}, $fault->{message},
				"$label: the worker's own message");
			is( $error->{context},
				"test_shm_mq_ext worker $fault->{victim} of $nworkers, PID $victim_pid",
				"$label: the context names the worker and its PID");
			check_time_to_error($label, $fault_at, $result->{error_at});

			is($session->query('SELECT 1')->{stdout},
				'1', "$label: the session goes on");
			$session->close;

			check_no_leftovers($node, $segments_before, $label);
		}
	}
}

$control->close;
$node->stop;
done_testing();
