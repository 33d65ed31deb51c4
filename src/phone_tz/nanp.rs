//! +1 area codes to IANA zones.
//!
//! Source: the NANPA "area codes by state/province" listing (nationalnanpa.com,
//! geographic NPAs), each state/province mapped to the zone most of it keeps.
//! Hand-entered on 2026-12-04 from that listing; not generated. Area codes of
//! states split between zones (Florida panhandle, Indiana, Kentucky, Tennessee,
//! Texas west, Idaho north, Oregon east, Dakotas, Nebraska/Kansas west,
//! Michigan's Upper Peninsula) map to the zone of the area code's main city and
//! are marked approximate. Arizona (no DST) and Hawaii keep their own zones.

use chrono_tz::Tz;

use super::Precision;

/// (zone, area codes wholly in it).
const EXACT: &[(Tz, &[u16])] = &[
    (Tz::America__New_York, &[
        // CT DE DC GA ME MD MA NH NJ NY NC OH PA RI SC VT VA WV
        203, 475, 860, 959, 302, 202, 771, 229, 404, 470, 478, 678, 706, 762, 770, 912, 943, 207,
        227, 240, 301, 410, 443, 667, 339, 351, 413, 508, 617, 774, 781, 857, 978, 603, 201, 551,
        609, 640, 732, 848, 856, 862, 908, 973, 212, 315, 329, 332, 347, 363, 516, 518, 585, 607,
        624, 631, 646, 680, 716, 718, 838, 845, 914, 917, 929, 934, 252, 336, 472, 704, 743, 828,
        910, 919, 980, 984, 216, 220, 234, 283, 326, 330, 380, 419, 436, 440, 513, 567, 614, 740,
        937, 215, 223, 267, 272, 412, 445, 484, 570, 582, 610, 717, 724, 814, 835, 878, 401, 803,
        839, 843, 854, 864, 802, 276, 434, 540, 571, 703, 757, 804, 826, 948, 304, 681,
        // FL peninsula, MI lower peninsula
        239, 305, 321, 324, 352, 386, 407, 448, 561, 645, 656, 689, 727, 728, 754, 772, 786, 813,
        863, 904, 941, 954, 231, 248, 269, 313, 517, 586, 616, 679, 734, 810, 947, 989,
    ]),
    (Tz::America__Toronto, &[
        // ON east, QC
        226, 249, 289, 343, 365, 382, 416, 437, 519, 548, 613, 647, 683, 705, 742, 753, 905, 367,
        418, 438, 450, 468, 514, 579, 581, 819, 873, 354, 263,
    ]),
    (Tz::America__Halifax, &[902, 782, 506, 428]),
    (Tz::America__St_Johns, &[709, 879]),
    (Tz::America__Chicago, &[
        // AL AR IL IA LA MN MS MO OK WI, most of TX
        205, 251, 256, 334, 659, 938, 479, 501, 870, 327, 217, 224, 309, 312, 331, 447, 464, 618,
        630, 708, 730, 773, 779, 815, 847, 861, 872, 319, 515, 563, 641, 712, 225, 318, 337, 504,
        985, 218, 320, 507, 612, 651, 763, 924, 952, 228, 601, 662, 769, 314, 417, 557, 573, 636,
        660, 816, 975, 405, 539, 572, 580, 918, 262, 274, 353, 414, 534, 608, 715, 920, 210, 214,
        254, 281, 325, 346, 361, 409, 430, 432, 469, 512, 682, 713, 726, 737, 806, 817, 830, 832,
        903, 936, 940, 945, 956, 972, 979,
    ]),
    (Tz::America__Winnipeg, &[204, 431, 584]),
    (Tz::America__Regina, &[306, 639, 474]),
    (Tz::America__Denver, &[
        // CO MT NM UT WY
        303, 719, 720, 970, 983, 406, 505, 575, 385, 435, 801, 307,
    ]),
    (Tz::America__Edmonton, &[403, 587, 780, 825, 368]),
    (Tz::America__Phoenix, &[480, 520, 602, 623, 928]),
    (Tz::America__Los_Angeles, &[
        // CA NV WA, most of OR
        209, 213, 279, 310, 323, 341, 350, 369, 408, 415, 424, 442, 510, 530, 559, 562, 619, 626,
        628, 650, 657, 661, 669, 707, 714, 738, 747, 760, 805, 818, 820, 831, 837, 840, 858, 909,
        916, 925, 949, 951, 702, 725, 775, 206, 253, 360, 425, 509, 564, 503, 971, 458,
    ]),
    (Tz::America__Vancouver, &[236, 250, 257, 604, 672, 778]),
    (Tz::America__Anchorage, &[907]),
    (Tz::Pacific__Honolulu, &[808]),
    (Tz::America__Puerto_Rico, &[787, 939]),
];

/// Area codes in states split between zones: the zone of the main city.
const APPROXIMATE: &[(u16, Tz)] = &[
    (850, Tz::America__Chicago),
    (317, Tz::America__Indiana__Indianapolis),
    (260, Tz::America__Indiana__Indianapolis),
    (765, Tz::America__Indiana__Indianapolis),
    (574, Tz::America__Indiana__Indianapolis),
    (812, Tz::America__Indiana__Indianapolis),
    (930, Tz::America__Indiana__Indianapolis),
    (219, Tz::America__Chicago),
    (502, Tz::America__Kentucky__Louisville),
    (859, Tz::America__New_York),
    (606, Tz::America__New_York),
    (270, Tz::America__Chicago),
    (364, Tz::America__Chicago),
    (615, Tz::America__Chicago),
    (629, Tz::America__Chicago),
    (731, Tz::America__Chicago),
    (901, Tz::America__Chicago),
    (931, Tz::America__Chicago),
    (423, Tz::America__New_York),
    (865, Tz::America__New_York),
    (915, Tz::America__Denver),
    (208, Tz::America__Boise),
    (986, Tz::America__Boise),
    (541, Tz::America__Los_Angeles),
    (701, Tz::America__Chicago),
    (605, Tz::America__Chicago),
    (308, Tz::America__Chicago),
    (402, Tz::America__Chicago),
    (531, Tz::America__Chicago),
    (316, Tz::America__Chicago),
    (620, Tz::America__Chicago),
    (785, Tz::America__Chicago),
    (913, Tz::America__Chicago),
    (906, Tz::America__Detroit),
    (807, Tz::America__Toronto),
    (867, Tz::America__Yellowknife),
];

/// The zone of a 3-digit NANP area code, or `None` for one not in the tables
/// (non-geographic codes such as 800 or 900, unassigned codes).
pub(super) fn zone_of(area: &str) -> Option<(Tz, Precision)> {
    let code: u16 = area.parse().ok()?;
    for (tz, codes) in EXACT {
        if codes.contains(&code) {
            return Some((*tz, Precision::Exact));
        }
    }
    APPROXIMATE
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, tz)| (*tz, Precision::Approximate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_area_code_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        let all = EXACT.iter().flat_map(|(_, c)| c.iter().copied()).chain(APPROXIMATE.iter().map(|(c, _)| *c));
        for code in all {
            assert!(seen.insert(code), "area code {code} listed twice");
        }
    }

    #[test]
    fn toll_free_is_none() {
        assert_eq!(zone_of("800"), None);
    }
}
