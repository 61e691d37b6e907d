"""Challenges are drawn at random, per mode, and never repeat the previous digits."""
from webapp import challenges


def test_number_challenges_are_four_digits_and_vary():
    drawn = {challenges.draw("number").validate_data for _ in range(200)}
    assert all(len(d) == 4 and d.isdigit() for d in drawn)
    assert len(drawn) > 150


def test_a_retry_never_shows_the_previous_digits():
    previous = "1234"
    assert all(challenges.draw("number", previous=previous).validate_data != previous for _ in range(500))


def test_action_challenges_are_one_of_the_two_orders_and_both_occur():
    drawn = {challenges.draw("action").validate_data for _ in range(100)}
    assert drawn == {"1,2", "2,1"}


def test_modes_map_to_juhe_liveness_types():
    assert [challenges.draw(m).liveness_type for m in ("silent", "number", "action")] == [0, 1, 2]
    assert challenges.draw("silent").validate_data is None


def test_random_mode_resolves_to_each_real_mode():
    assert {challenges.resolve_mode("random") for _ in range(200)} == set(challenges.MODES)


def test_descriptions_name_the_actions_in_order():
    assert challenges.describe("action", "2,1")["actions"][0]["zh"] == "闭眼"
    assert challenges.describe("action", "1,2")["actions"][0]["zh"] == "张嘴"
    assert challenges.describe("number", "0042") == {"digits": "0042"}
