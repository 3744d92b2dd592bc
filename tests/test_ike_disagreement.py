"""Two IKE implementations that do not agree: the case's failure shows what the wire carried, the notify named.

libreswan is told to accept only AES-256/SHA-512/MODP-4096 for IKE; strongSwan offers AES-128/SHA-256/MODP-2048. r2
refuses r1's IKE_SA_INIT in the clear, and the case, run on real DUTs, fails saying so: the offer, the refusal."""
pytest_plugins = ["pytester"]

SCENARIO = '''
import dataclasses
import functools

from grelab.networks import ike
from grelab.networks.ike_daemons import IMPLEMENTATIONS, LIBRESWAN_ROW, pluto
from grelab.scenario.spec import Variant

IMPLEMENTATIONS["libreswan-aes256"] = dataclasses.replace(
    LIBRESWAN_ROW, name="libreswan-aes256",
    plan=functools.partial(pluto, proposals={"ike": "aes256-sha2_512-modp4096", "esp": "aes_gcm128"}))
net = ike.two_offices_ike("ike_refused", variants=[
    Variant("refused-gcm128", esp="gcm128", implementation="strongswan→libreswan-aes256")]).fixture()


def test_established(net, record_property):
    ike.established(net, record_property)
'''


def test_a_refused_proposal_fails_the_case_naming_the_offer_and_the_notify(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_refused=SCENARIO)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dut", "uml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*received NO_PROPOSAL_CHOSEN notify error*",
        "*IKE on the transit (strongswan*libreswan-aes256):*",
        "*r1->r2 IKE_SA_INIT request #0: SA[[]1: AES-CBC/128 SHA2-256-128 PRF_HMAC_SHA2_256 2048MODPgr[]], KE(2048MODPgr)*",
        "*r2->r1 IKE_SA_INIT response #0: N(NO_PROPOSAL_CHOSEN)*"])
