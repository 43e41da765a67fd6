"""Rules between options, checked once every option has its value, and what a valid
combination does that its values alone do not say."""

from __future__ import annotations

from gibbous.core.errors import GibbousError
from gibbous.core.settings.config import Config
from gibbous.core.settings.userdata import check_user_data

MIN_LOG_FILE_BYTES = 64 * 2**10


def cross_checks(config: Config) -> list[str]:
    """What is wrong with the combination of values, one message each."""
    out = []
    hot = config.hot_node
    if not hot.green_cpu <= hot.yellow_cpu <= hot.red_cpu:
        out.append("manageHighUtilization: need greenCPU <= yellowCPU <= redCPU")
    if not hot.green_memory <= hot.yellow_memory <= hot.red_memory:
        out.append("manageHighUtilization: need greenMemory <= yellowMemory <= redMemory")
    if config.hot_node.loop_period_s <= 0:
        out.append("manageHighUtilization.loopPeriod must be > 0")
    if config.scale_up_timeout_s <= 0:
        out.append("scaleUpTimeout must be > 0")
    if config.scale_up_batch_max_s < config.scale_up_batch_idle_s:
        out.append("scaleUpBatchMax must be >= scaleUpBatchIdle")
    if config.logging.max_file_bytes < MIN_LOG_FILE_BYTES:
        # 0 would never rotate (Python's RotatingFileHandler reads 0 as "no limit")
        out.append("logging.maxFileSize must be at least 64Ki")
    aws = config.aws
    if aws.user_data_secret and aws.user_data:
        out.append(
            "aws.userData and aws.userDataSecret are both set: keep the user data in one "
            "place (the Secret, when it carries a join token)"
        )
    elif not aws.user_data_secret:
        # The Secret's content is checked by the autoscaler, the one component that reads it.
        try:
            check_user_data(aws.effective_user_data_type, aws.user_data)
        except GibbousError as error:
            out.append(str(error))
    if (
        aws.use_spot_advisor
        and not aws.spot_advisor_file
        and not aws.spot_advisor_url.startswith(("https://", "http://"))
    ):
        out.append(
            f"aws.spotAdvisorUrl {aws.spot_advisor_url!r}: aws.useSpotAdvisor needs an "
            "http(s) URL of the Spot Instance Advisor's JSON, or aws.spotAdvisorFile"
        )
    return out


def config_notes(config: Config) -> list[str]:
    """What a valid configuration does that its values alone do not say, one line each."""
    out = []
    if config.cloud == "aws":
        aws = config.aws
        source = (
            (
                "aws.spotAdvisorFile's prices"
                if aws.spot_advisor_file
                else f"the Spot Instance Advisor's prices from {aws.spot_advisor_url} (live spot "
                "prices while it cannot be fetched)"
            )
            if aws.use_spot_advisor
            else "live spot prices"
        )
        out.append(
            f"spotPriceRatioEstimate ({config.spot_price_ratio:g}) is overridden on AWS: the "
            f"autoscaler prices spot with {source}, and the ratio applies only to types without "
            "one (and to `gibbous estimate`, which reads no live prices)"
        )
    scale_down = config.scale_down
    if config.hot_node.enabled and scale_down.enabled and scale_down.bin_pack_usage_threshold:
        # A Luna user with P15's settings (binPackNodeUtilizationThreshold 0.0) expects no
        # node in use to go: say that Gibbous reads usage here, and how to keep Luna's rule.
        out.append(
            "with manageHighUtilization.enabled, scale-down also reads measured use: a "
            "bin-pack node using under "
            f"{scale_down.bin_pack_usage_threshold:g} of its capacity goes when its pods fit "
            f"elsewhere {scale_down.usage_headroom:g} points below redCPU/redMemory "
            "(scaleDown.binPackNodeUsageThreshold: 0.0 keeps Luna's request-only rule)"
        )
    return out
