//! The values the inferred spec draws from, written into it inline (`choice(...)`), so a spec
//! that `dbtool init` writes needs no data file and says in itself what it draws.

pub const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Maria",
    "Wei",
    "Aisha",
    "Carlos",
    "Yuki",
    "Olga",
    "Ahmed",
    "Priya",
    "Liam",
    "Emma",
    "Noah",
    "Olivia",
    "Lucas",
    "Sofia",
    "Mateo",
    "Chloe",
    "Omar",
    "Fatima",
    "Hiro",
    "Ingrid",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Nguyen",
    "Kim",
    "Chen",
    "Patel",
    "Singh",
    "Muller",
    "Rossi",
    "Silva",
    "Kowalski",
    "Novak",
];

/// Short lower-case first names for addresses and user names.
pub const HANDLES: &[&str] = &[
    "ana", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jo", "kai", "lea", "max",
    "nia", "oli", "pia", "rex", "sam", "tom", "uma", "vic", "wes", "yan", "zoe",
];

pub const CITIES: &[&str] = &[
    "New York",
    "London",
    "Paris",
    "Berlin",
    "Tokyo",
    "Toronto",
    "Sydney",
    "Madrid",
    "Rome",
    "Amsterdam",
    "Chicago",
    "Austin",
    "Seattle",
    "Dublin",
    "Lisbon",
    "Vienna",
    "Prague",
    "Oslo",
    "Stockholm",
    "Seoul",
    "Mumbai",
    "Cape Town",
    "Mexico City",
    "Sao Paulo",
    "Buenos Aires",
];

pub const COUNTRIES: &[&str] = &[
    "United States",
    "United Kingdom",
    "France",
    "Germany",
    "Japan",
    "Canada",
    "Australia",
    "Spain",
    "Italy",
    "Netherlands",
    "Ireland",
    "Portugal",
    "Austria",
    "Czechia",
    "Norway",
    "Sweden",
    "South Korea",
    "India",
    "South Africa",
    "Mexico",
    "Brazil",
    "Argentina",
];

pub const COUNTRY_CODES: &[&str] = &[
    "US", "GB", "FR", "DE", "JP", "CA", "AU", "ES", "IT", "NL", "IE", "PT", "AT", "CZ", "NO", "SE",
    "KR", "IN", "ZA", "MX", "BR", "AR",
];

pub const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Rd",
    "Cedar Ln",
    "Park Blvd",
    "Elm St",
    "Hill Rd",
    "Lake Dr",
    "River Way",
    "Pine Ct",
    "Station Rd",
    "Church St",
];

pub const ADJECTIVES: &[&str] = &[
    "Quiet", "Bright", "Golden", "Hidden", "Gentle", "Bold", "Clever", "Fresh", "Grand", "Lucky",
    "Modern", "Sunny",
];

pub const NOUNS: &[&str] = &[
    "garden", "river", "harbor", "meadow", "forest", "beacon", "canvas", "lantern", "summit",
    "valley", "bridge", "island",
];

pub const VERBS: &[&str] = &["meets", "follows", "builds", "finds", "crosses", "guides"];

pub const COLORS: &[&str] = &[
    "red", "green", "blue", "yellow", "purple", "orange", "black", "white", "teal", "gray",
];

/// `choice('a', 'b', ...)` over `values`, for an expression.
pub fn choice(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    format!("choice({})", quoted.join(", "))
}

/// The longest and shortest of `values`, in characters.
pub fn lengths(values: &[&str]) -> (usize, usize) {
    let min = values.iter().map(|v| v.chars().count()).min().unwrap_or(0);
    let max = values.iter().map(|v| v.chars().count()).max().unwrap_or(0);
    (min, max)
}
