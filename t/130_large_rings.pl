
# 130_large_rings.pl
#
# Rings larger than a stock server leaves room for.  The regression suite
# runs against the user's own server, whose max_worker_processes is 8 by
# default with one slot held by the logical replication launcher, so it
# stops at rings of seven workers.  Here, on a node with
# max_worker_processes = 16:
#
#  - a ring of eight, and one of every free slot, carry their messages round
#    and back intact (test_shm_mq() checks each byte when it comes back);
#  - a ring of eight delivers under each wait strategy setting the
#    regression suite's strategies.sql runs: "block", and "adaptive" with
#    and without a polling budget;
#  - a call that returns has waited for its workers: none is left, at once.
#
# Afterwards no worker process and no segment of ours is left.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $max_worker_processes = 16;

# The logical replication launcher holds one slot from startup on.
my $free_slots = $max_worker_processes - 1;

# The smallest ring the regression suite leaves out on a stock server.
my $eight = 8;

my $node =
  new_node('large_rings', max_worker_processes => $max_worker_processes);
my $segments_before = dsm_segments($node);

foreach my $nworkers ($eight, $free_slots)
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SELECT test_shm_mq(1024, 'ring of $nworkers', 100, $nworkers)");
	is($ret,    0,  "ring of $nworkers: the round trips succeed");
	is($stderr, '', "ring of $nworkers: no error or warning");

	# The workers of ours that pg_stat_activity shows right after a call.
	is(scalar(ring_workers($node, undef)),
		'0', "ring of $nworkers: no worker left once the call returns");
}

foreach my $setting (['block', 100], ['adaptive', 0], ['adaptive', 100])
{
	my ($strategy, $budget) = @$setting;
	my $label = "ring of $eight, $strategy, spin budget $budget us";
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', qq{
		SET test_shm_mq_ext.wait_strategy = $strategy;
		SET test_shm_mq_ext.spin_budget_us = $budget;
		SELECT current_setting('test_shm_mq_ext.wait_strategy'),
		       current_setting('test_shm_mq_ext.spin_budget_us'),
		       test_shm_mq(4096, 'eight', 500, $eight);
	});
	is($ret,    0,                   "$label: the round trips succeed");
	is($stderr, '',                  "$label: no error or warning");
	is($stdout, "$strategy|$budget|", "$label: ran under that setting");
}

check_no_leftovers($node, $segments_before, 'end', settle => 1);
$node->stop;
done_testing();
